"""Logistic regression on binarized Fashion-MNIST (pixel / 255 > 0.5): the discriminative half of the main pair.

Run:
  gdjax train --config configs/logistic_regression_binarized_fashion_mnist.py --workdir workdirs/logreg_binarized
  gdjax eval --workdir workdirs/logreg_binarized --checkpoint best

The linear model (scores = W x + b) with softmax cross-entropy and an L2
penalty on W, on exactly the features Bernoulli naive Bayes sees
(configs/naive_bayes_bernoulli_fashion_mnist.py), fitted as scikit-learn's
LogisticRegression(solver="lbfgs") is: full-batch L-BFGS (optax.lbfgs with
its zoom line search) on all N = 54,000 training images, 300 iterations.
scikit-learn minimises C * sum(CE) + |W|^2 / 2, i.e. mean(CE) + |W|^2 / (2 C N),
so `l2_regularization` follows `C` and the training-set size:
lambda = 1 / (C N). C = 0.01 was chosen on the validation split (the last
6,000 training images) by benchmarks/learning_curves.py: among 0.01, 0.1 and 1
at 4,634 examples, the largest size at which all three were compared (mean
validation accuracy over 5 seeds 0.7696, 0.7682, 0.7346). At 54,000 it reaches
0.8005 validation and 0.7943 test accuracy, within 0.02 points of
scikit-learn's (docs/generative_vs_discriminative.md).

Full batch: the batch is the training set, so `batch_size` and
`dataset.subset_size` are one field (setting either sets both; a smaller
value trains on a class-balanced subset of that size, drawn under the seed).
L-BFGS's line search needs --config.parallelism=jit (the default).

Takes: 16 minutes for the 300 steps on the 2-core Intel Xeon while other jobs
kept it at a load average of 10 (0.26 steps/s; 2026-11-30); the objective's
mean over the last 50 steps moved by under 1e-5 (relative) from the 50 before.
Reaches: docs/generative_vs_discriminative.md, "Agreement with scikit-learn" and
"Learning curves".
"""

from gdjax.tasks import classifier


def get_config():
  # C: chosen on validation (see above).
  return classifier.logistic_regression_config(features="binarized", C=0.01, total_steps=300)
