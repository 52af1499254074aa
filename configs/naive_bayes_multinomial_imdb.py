"""Multinomial naive Bayes on IMDB reviews as bag-of-words counts (TFDS `imdb_reviews`).

Run (once `imdb_reviews` is prepared in TFDS's data_dir; this project's
machine has no internet, so it has only been run on
`tfds.testing.mock_data`, in tests/test_naive_bayes.py):
  gdjax train --config configs/naive_bayes_multinomial_imdb.py --workdir workdirs/naive_bayes_imdb
  gdjax eval --workdir workdirs/naive_bayes_imdb --checkpoint best

The 5,000 most frequent words of the training reviews (train[:90%], 22,500
reviews; the last 2,500 are the validation split) are the features, as
counts; one pass in batches of 500 (45 steps) adds up each word's count per
class, smoothed with Laplace's alpha = 1 (scikit-learn's MultinomialNB
default). Any TFDS dataset with a text feature and a label works the same
way: set dataset.name, dataset.text_feature, the splits and subset_size (the
training split's size).

Takes: not measured (no prepared imdb_reviews here). Host memory: the training
split as dense float32 counts, 22,500 x 5,000 x 4 bytes = 450 MB.
Reaches: no figure; docs/generative_vs_discriminative.md, "Text", says how it is tested.
"""

import ml_collections

from gdjax.tasks import naive_bayes


def get_config():
  config = naive_bayes.default_config()
  config.dataset = ml_collections.ConfigDict(
    dict(
      name="imdb_reviews",
      data_dir="",
      train_split="train[:90%]",
      eval_split="train[90%:]",
      text_feature="text",  # Examples become bag-of-words counts over a vocabulary of the training split.
      vocabulary_size=5000,
      subset_size=22_500,  # All of train[:90%].
      subset_seed=0,
      single_pass=True,
      in_memory=True,
      shuffle_buffer_size=22_500,
      cache=True,
      threads=2,
    )
  )
  config.dataset.subset_seed = config.get_ref("seed")
  config.total_steps = (config.dataset.get_ref("subset_size") + config.get_ref("batch_size") - 1) // config.get_ref(
    "batch_size"
  )
  config.naive_bayes.kind = "multinomial"
  config.features = "counts"
  config.batch_size = 500
  config.evals.classification.split = config.dataset.get_ref("eval_split").identity()
  return config
