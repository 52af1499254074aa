"""Gaussian naive Bayes on Fashion-MNIST intensities (pixel / 255): the generative half of the second pair.

Run:
  gdjax train --config configs/naive_bayes_gaussian_fashion_mnist.py --workdir workdirs/naive_bayes_gaussian
  gdjax eval --workdir workdirs/naive_bayes_gaussian --checkpoint best

One pass over the first 54,000 training images in batches of 1,000 (54
steps, no optimizer): per class and pixel, the mean and variance (merged
batch by batch), plus var_smoothing times the largest pixel variance on every
variance, as scikit-learn's GaussianNB does. var_smoothing = 0.1 was chosen
on the validation split (the last 6,000 training images) by
configs/sweeps/naive_bayes_var_smoothing.py, among eight values from 1e-9 to 1
(validation accuracy 0.5858 at scikit-learn's default 1e-9, 0.6742 at 0.1);
test accuracy 0.6730, as scikit-learn's GaussianNB(var_smoothing=0.1). Its
discriminative twin on the same features is
configs/logistic_regression_intensity_fashion_mnist.py.

Takes: 20 s for `gdjax train` on the busy 2-core Intel Xeon (2026-11-30), nearly all of it
process start and data loading.
Reaches: docs/generative_vs_discriminative.md, "Agreement with scikit-learn" and
"Learning curves".
"""

from gdjax.tasks import naive_bayes


def get_config():
  config = naive_bayes.default_config()
  config.naive_bayes.kind = "gaussian"
  config.naive_bayes.var_smoothing = 0.1
  config.features = "intensity"
  return config
