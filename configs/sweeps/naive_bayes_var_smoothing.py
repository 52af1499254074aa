"""Gaussian naive Bayes' variance floor, chosen on validation: var_smoothing from 1e-9 to 1 on all 54,000 images.

Compares: configs/naive_bayes_gaussian_fashion_mnist.py at eight values of
`naive_bayes.var_smoothing` (scikit-learn's default 1e-9 up to 1), seed 0
(one pass over the whole training split: no randomness). The sweep keeps the
value with the best validation accuracy (train[54000:]) and reports its test
accuracy; the config's value is that choice.

Run:
  gdjax sweep --sweep configs/sweeps/naive_bayes_var_smoothing.py --out workdirs/sweeps/nb_var_smoothing

Takes: about 30 s a run (process start, data loading, one pass), 8 runs.
Results: docs/generative_vs_discriminative.md, "Gaussian naive Bayes' variance floor".
"""


def get_sweep():
  return dict(
    configs=("naive_bayes_gaussian_fashion_mnist",),
    seeds=(0,),
    grid={"naive_bayes.var_smoothing": (1e-9, 1e-6, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)},
    select=dict(metric="classification/accuracy", mode="max"),
    report=("classification/accuracy",),
  )
