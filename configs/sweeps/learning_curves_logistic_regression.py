"""Learning curves of the discriminative classifiers: logistic regression on binarized pixels and on intensities.

Compares: configs/logistic_regression_binarized_fashion_mnist.py and
configs/logistic_regression_intensity_fashion_mnist.py (full-batch L-BFGS,
L2 with scikit-learn's C) on the same class-balanced subsets of
train[:54000] as configs/sweeps/learning_curves_naive_bayes.py: 8
log-spaced sizes, 5 seeds each. C is a grid: for each size,
benchmarks/learning_curves.py keeps the value with the best mean validation
accuracy (train[54000:]) and reports its test error.

Run (all fits in one process, the data loaded once):
  python -m benchmarks.learning_curves --out workdirs/learning_curves
or each run as its own `gdjax train` + `gdjax eval` (240 runs, hours):
  gdjax sweep --sweep configs/sweeps/learning_curves_logistic_regression.py --out workdirs/sweeps/lc_logreg
"""

SIZES = tuple(round(10 * 5400 ** (k / 7)) for k in range(8))  # The naive Bayes sweep's sizes: 10 to 54,000, log-spaced.


def get_sweep():
  return dict(
    configs=("logistic_regression_binarized_fashion_mnist", "logistic_regression_intensity_fashion_mnist"),
    seeds=(0, 1, 2, 3, 4),
    grid={"dataset.subset_size": SIZES, "C": (0.01, 0.1, 1.0)},
    report=("classification/accuracy",),
  )
