"""Base configs that the files in `configs/` start from and change.

Config files live outside the package and import these, so that every
experiment states only what differs from the base.
"""

from __future__ import annotations

import ml_collections


def fashion_mnist_dataset() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      name="fashion_mnist",
      data_dir="",  # TFDS data_dir, e.g. gs://bucket/tfds; "" means TFDS's default.
      local_dir="",  # IDX files; "" means $GDJAX_FASHION_MNIST_DIR, else Debian's directory.
      # The last 6,000 training images are held out for validation: the
      # best checkpoint and every tuning choice are made on them, never on `test`.
      train_split="train[:54000]",
      eval_split="train[54000:]",
      shuffle_buffer_size=54_000,
      cache=True,
    )
  )


def classifier_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.task = "classifier"
  config.seed = 0
  config.dataset = fashion_mnist_dataset()
  config.model = ml_collections.ConfigDict(dict(name="cnn"))
  config.loss = "cross_entropy"
  config.l2_regularization = 0.0
  config.augment = ml_collections.ConfigDict(dict(flip=False, max_shift=0))
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.total_steps = 1000
  config.optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3))
  config.schedule = ml_collections.ConfigDict(dict(name="cosine", warmup_steps=0, end_fraction=0.0))
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.checkpoint = ml_collections.ConfigDict(dict(every_steps=500, keep_last=3, keep_best=True))
  config.progress_bar = True
  # Written by the loop from the dataset: the image shape the model was built for.
  config.input_shape = ()
  return config
