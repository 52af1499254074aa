"""How far the CNN classifier's step could move against PyTorch: an upper bound.

The suite (`suite.py`) times gdjax's CNN step against the PyTorch reference.
This script asks what the best rewrite of the step's non-convolution work
could reach. It times three steps alternately, in one process, on the same
fixed random batch:

- gdjax's CNN step as `configs/cnn_fashion_mnist.py` configures it;
- the same step with its batch norm removed (`model.use_batch_norm=False`: the
  convolutions get their bias back and nothing else changes). Batch norm is
  the largest block of work besides the convolutions, so no rewrite of it can
  make the real step faster than this one;
- the PyTorch reference (`torch_reference.CNNTrainer`, with batch norm).

It prints each gdjax step's median steps/s and its median per-round ratio to
PyTorch. The step without batch norm is a different model, timed only as a
bound; it is never trained or reported as gdjax's speed.

Run:
  pip install -e '.[bench]'
  .venv/bin/python benchmarks/cnn_headroom.py [--batch_sizes 64 128 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch_reference  # noqa: E402
from common import print_table, write_results  # noqa: E402
from suite import GdjaxStep, TorchStep  # noqa: E402

VARIANTS = {
  "as configured": {},
  "without batch norm": {"model.use_batch_norm": False},
}


def measure(batch_size: int, repeats: int, window_s: float) -> list[dict]:
  random = np.random.default_rng(0)
  steps = {name: GdjaxStep("cnn_fashion_mnist", batch_size, random, overrides=o) for name, o in VARIANTS.items()}
  steps["pytorch"] = TorchStep(
    lambda device: torch_reference.CNNTrainer(device=device), False, batch_size, "cpu", random
  )
  for step in steps.values():  # Warm-up, then windows of about `window_s` seconds each.
    step.run(3)
  window = {name: max(3, int(3 / step.run(3) * window_s)) for name, step in steps.items()}
  rates = {name: [] for name in steps}
  for _ in range(repeats):
    for name, step in steps.items():
      rates[name].append(window[name] / step.run(window[name]))
  rows = []
  for name in VARIANTS:
    ratios = [ours / theirs for ours, theirs in zip(rates[name], rates["pytorch"], strict=True)]
    rows.append(
      {
        "key": f"cnn@{batch_size} {name}",
        "batch_size": batch_size,
        "variant": name,
        "gdjax_steps_per_s": statistics.median(rates[name]),
        "pytorch_steps_per_s": statistics.median(rates["pytorch"]),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "repeats": repeats,
      }
    )
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 128, 256])
  parser.add_argument("--repeats", type=int, default=7, help="alternating timed windows per step")
  parser.add_argument("--window_s", type=float, default=2.0, help="about how long each timed window runs")
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count() or 1)
  rows = []
  for batch_size in args.batch_sizes:
    rows += measure(batch_size, args.repeats, args.window_s)
    print(*(f"{r['key']}: ratio {r['ratio']:.2f}" for r in rows[-len(VARIANTS) :]), sep="\n", flush=True)
  print_table(
    rows,
    [
      ("key", "model@batch, gdjax step"),
      ("gdjax_steps_per_s", "gdjax steps/s"),
      ("pytorch_steps_per_s", "pytorch steps/s"),
      ("ratio", "ratio (median)"),
      ("ratio_min", "min"),
      ("ratio_max", "max"),
    ],
  )
  print("wrote", write_results("cnn_headroom", rows, merge_key="key", torch_version=torch.__version__))


if __name__ == "__main__":
  main()
