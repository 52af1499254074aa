"""Bernoulli naive Bayes on binarized Fashion-MNIST (pixel / 255 > 0.5): the generative half of the main pair.

Run:
  gdjax train --config configs/naive_bayes_bernoulli_fashion_mnist.py --workdir workdirs/naive_bayes_bernoulli
  gdjax eval --workdir workdirs/naive_bayes_bernoulli --checkpoint best

One pass over the first 54,000 training images in batches of 1,000 (54
steps, no optimizer): per class, how often each of the 784 binarized pixels
is on, smoothed with Laplace's alpha = 1 (scikit-learn's BernoulliNB
default). Test accuracy 0.6479, the same as scikit-learn's BernoulliNB. Its
discriminative twin on the same features is
configs/logistic_regression_binarized_fashion_mnist.py.

Takes: 16 s for `gdjax train` and 14 s for `gdjax eval`, nearly all of it process
start and data loading (the pass itself is under a second), on the shared
2-core Intel Xeon, 2026-11-30.
Reaches: docs/generative_vs_discriminative.md, "Agreement with scikit-learn" and
"Learning curves".
"""

from gdjax.tasks import naive_bayes


def get_config():
  return naive_bayes.default_config()
