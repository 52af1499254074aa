"""Which computational form of the GAN convolutions makes the whole train step fastest.

`layers.ConvTranspose` and `layers.Conv` compute the same function in several
forms (gdjax/models/layers.py); this times one GAN config's jitted train step
with each combination of `--config.model.generator.conv_transpose` and
`--config.model.discriminator.conv`, alternately (windows of about 1.5 s,
after a warm-up), and prints each combination's median steps/s, the median of
its per-window ratios to the first combination, and XLA's peak step memory.
This is how `implementation="auto"` was chosen for CPU.

Run:
  .venv/bin/python benchmarks/conv_forms.py --config dcgan_fashion_mnist --batch_size 64
  .venv/bin/python benchmarks/conv_forms.py --config wgan_gp_fashion_mnist --batch_size 64 \\
      --forms xla/xla matmul/xla matmul/im2col
  .venv/bin/python benchmarks/conv_forms.py --dtype bfloat16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import print_table, write_results  # noqa: E402
from suite import GdjaxStep  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="dcgan_fashion_mnist")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument(
    "--forms",
    nargs="+",
    default=["subpixel/xla", "matmul/xla", "matmul/im2col"],
    help="generator conv_transpose / discriminator conv; the first is the baseline of the ratios",
  )
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="config.compute_dtype")
  parser.add_argument("--repeats", type=int, default=8)
  parser.add_argument("--window_s", type=float, default=1.5)
  args = parser.parse_args()

  steps = {}
  for form in args.forms:
    conv_transpose, conv = form.split("/")
    overrides = {"model.generator.conv_transpose": conv_transpose, "model.discriminator.conv": conv}
    steps[form] = GdjaxStep(args.config, args.batch_size, np.random.default_rng(0), args.dtype, overrides)
    steps[form].run(3)  # warm-up
  rates = {form: [] for form in args.forms}
  for _ in range(args.repeats):
    for form, step in steps.items():
      count, start = 0, time.perf_counter()
      while time.perf_counter() - start < args.window_s:
        step.run(1)
        count += 1
      rates[form].append(count / (time.perf_counter() - start))
  baseline = rates[args.forms[0]]
  rows = []
  for form in args.forms:
    rows.append(
      {
        "key": f"{args.config}@{args.batch_size}/{args.dtype} {form}",
        "forms": form,
        "steps_per_s": statistics.median(rates[form]),
        "ratio": statistics.median(a / b for a, b in zip(rates[form], baseline)),
        "peak_mib": steps[form].peak_bytes / 2**20 if steps[form].peak_bytes else None,
      }
    )
  print(f"{args.config}, batch {args.batch_size}, {args.dtype}, {args.repeats} alternating windows")
  print_table(
    rows,
    [
      ("forms", "G conv_transpose / D conv"),
      ("steps_per_s", "steps/s"),
      ("ratio", f"ratio to {args.forms[0]}"),
      ("peak_mib", "peak MiB"),
    ],
  )
  print("wrote", write_results("conv_forms", rows, merge_key="key"))


if __name__ == "__main__":
  main()
