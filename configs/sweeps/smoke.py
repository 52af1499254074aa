"""Smoke sweep: the MLP classifier at two learning rates, two seeds, 300 steps each.

Compares: configs/mlp_fashion_mnist.py with learning rate 1e-3 against 3e-3,
shortened to 300 steps (evaluated on the validation split every 100), seeds
0 and 1: 4 runs. It shows every part of `gdjax sweep` in under a minute: the
table per setting, the setting chosen on validation accuracy with its test
accuracy, the plots, and resuming (run the command twice; the second time
trains nothing).

Run:
  gdjax sweep --sweep configs/sweeps/smoke.py --out workdirs/sweeps/smoke --parallel 2
  (or `python -m gdjax.sweep ...` with the same flags)

Takes: 50 s with --parallel 2 on the 2-core CPU (Intel Xeon, 2026-11-30),
once the Fashion-MNIST TFDS data is prepared (the first `gdjax train` does it).

Writes workdirs/sweeps/smoke/results.md, results.csv, runs.csv, results.json
and plots/. The numbers are an example of the output, not a benchmark;
results of the full sweeps are documented in docs/results.md.
"""


def get_sweep():
  return dict(
    configs=("mlp_fashion_mnist",),
    seeds=(0, 1),
    grid={"optimizer.learning_rate": (1e-3, 3e-3)},
    overrides={"total_steps": 300, "eval_every_steps": 100, "checkpoint.every_steps": 100},
    select=dict(metric="classification/accuracy", mode="max"),
    report=("classification/accuracy", "classification/cross_entropy"),
  )
