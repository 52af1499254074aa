"""Learning curves of the generative classifiers: Bernoulli and Gaussian naive Bayes, 10 to 54,000 examples.

Compares: configs/naive_bayes_bernoulli_fashion_mnist.py (binarized pixels,
Laplace alpha = 1) and configs/naive_bayes_gaussian_fashion_mnist.py
(intensities) on class-balanced subsets of train[:54000] of 8 log-spaced
sizes, 5 seeds each (seed s draws subset s). The Gaussian variance floor
`var_smoothing` is a grid: for each size, benchmarks/learning_curves.py keeps
the value with the best mean validation accuracy (train[54000:]) and reports
its test error. The Bernoulli model ignores var_smoothing, so its three
settings are the same fit.

Run (all fits in one process, the data loaded once):
  python -m benchmarks.learning_curves --out workdirs/learning_curves
or each run as its own `gdjax train` + `gdjax eval` (hours: about 30 s of
process start and data loading per run, 240 runs):
  gdjax sweep --sweep configs/sweeps/learning_curves_naive_bayes.py --out workdirs/sweeps/lc_naive_bayes

Its discriminative twin is configs/sweeps/learning_curves_logistic_regression.py;
the results are in docs/generative_vs_discriminative.md.
"""

SIZES = tuple(round(10 * 5400 ** (k / 7)) for k in range(8))  # 10, 34, 117, ..., 15820, 54000: log-spaced.


def get_sweep():
  return dict(
    configs=("naive_bayes_bernoulli_fashion_mnist", "naive_bayes_gaussian_fashion_mnist"),
    seeds=(0, 1, 2, 3, 4),
    grid={"dataset.subset_size": SIZES, "naive_bayes.var_smoothing": (1e-3, 1e-2, 1e-1)},
    report=("classification/accuracy",),
  )
