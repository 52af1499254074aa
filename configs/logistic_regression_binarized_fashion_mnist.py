"""Logistic regression on binarized Fashion-MNIST (pixel / 255 > 0.5): the discriminative half of the main pair.

Run:
  gdjax train --config configs/logistic_regression_binarized_fashion_mnist.py --workdir workdirs/logreg_binarized
  gdjax eval --workdir workdirs/logreg_binarized --checkpoint best

The linear model (scores = W x + b) with softmax cross-entropy and an L2
penalty on W, on exactly the features Bernoulli naive Bayes sees
(configs/naive_bayes_bernoulli_fashion_mnist.py), fitted as scikit-learn's
LogisticRegression(solver="lbfgs") is: full-batch L-BFGS (optax.lbfgs with
its zoom line search) on all N = 54,000 training images, 500 iterations.
scikit-learn minimises C * sum(CE) + |W|^2 / 2, i.e. mean(CE) + |W|^2 / (2 C N),
so `l2_regularization` follows `C` and the training-set size:
lambda = 1 / (C N). C is chosen on the validation split (the last 6,000
training images) by benchmarks/learning_curves.py.

Full batch: the batch is the training set, so `batch_size` and
`dataset.subset_size` are one field (setting either sets both; a smaller
value trains on a class-balanced subset of that size, drawn under the seed).
L-BFGS's line search needs --config.parallelism=jit (the default).

Reaches: docs/generative_vs_discriminative.md, "Agreement with scikit-learn" and
"Learning curves".
"""

from gdjax.tasks import classifier


def get_config():
  config = classifier.default_config()
  config.model = dict(name="linear")
  config.loss = "cross_entropy"
  config.features = "binarized"
  config.dataset.subset_size = 54_000
  config.dataset.subset_seed = config.get_ref("seed")
  config.batch_size = config.dataset.get_ref("subset_size")  # Full batch: one field.
  config.C = 1.0  # scikit-learn's inverse regularisation strength, chosen on validation.
  config.l2_regularization = 1.0 / (config.get_ref("C") * config.dataset.get_ref("subset_size"))
  config.optimizer = dict(name="lbfgs", learning_rate=1.0, memory_size=10)
  config.schedule = dict(name="constant")
  config.total_steps = 500
  config.log_every_steps = 50
  config.eval_every_steps = 0  # Once, at the end: the fit is an optimisation to convergence, not a curve.
  config.checkpoint.every_steps = 250
  return config
