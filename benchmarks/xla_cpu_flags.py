"""Train-step speed with and without gdjax's default XLA flags (`gdjax/xla_flags.py`).

XLA reads its flags once per process, so each measurement is its own
process: for every model and batch size, the variants run one after another
in fresh processes, for `--rounds` rounds, so that machine noise hits them
alike. Each process builds the jitted train step (benchmarks/suite.py's
`GdjaxStep`), warms it up and reports the median steps/s of 5 windows of
about 1.5 s. The script prints each variant's median over rounds and the
median of its per-round ratios to the first variant.

Variants: "xla" is XLA's own defaults (GDJAX_XLA_DEFAULTS=0), "gdjax" adds
gdjax's defaults; `--variant NAME=FLAGS` adds any other set to try.

Run:
  .venv/bin/python benchmarks/xla_cpu_flags.py
  .venv/bin/python benchmarks/xla_cpu_flags.py --runs cnn@64 --rounds 2 \\
      --variant onednn="--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_use_onednn=true"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CONFIGS = {
  "cnn": "cnn_fashion_mnist",
  "dcgan": "dcgan_fashion_mnist",
  "wgan_gp": "wgan_gp_fashion_mnist",
  "mlp_gan": "mlp_gan_fashion_mnist",
}
DEFAULT_RUNS = ["cnn@64", "cnn@128", "cnn@256", "dcgan@64", "dcgan@256", "wgan_gp@64", "mlp_gan@64"]
USER_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")  # Before benchmarks/common.py adds gdjax's defaults.


def child(config_name: str, batch_size: int) -> None:
  sys.path.insert(0, os.path.dirname(__file__))
  import numpy as np
  from suite import GdjaxStep

  step = GdjaxStep(config_name, batch_size, np.random.default_rng(0))
  step.run(3)
  steps = max(3, int(3 / step.run(3) * 1.5))
  rates = [steps / step.run(steps) for _ in range(5)]
  print("RESULT", json.dumps({"steps_per_s": statistics.median(rates), "xla_flags": os.environ.get("XLA_FLAGS", "")}))


def measure(config_name: str, batch_size: int, flags: str | None) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=USER_XLA_FLAGS)
  if flags is None:  # gdjax's defaults, added by benchmarks/common.py to whatever XLA_FLAGS holds.
    env.pop("GDJAX_XLA_DEFAULTS", None)
  else:
    env["GDJAX_XLA_DEFAULTS"] = "0"
    env["XLA_FLAGS"] = " ".join([USER_XLA_FLAGS, flags]).strip()
  command = [sys.executable, __file__, "--child", config_name, str(batch_size)]
  done = subprocess.run(command, env=env, capture_output=True, text=True)
  lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
  if done.returncode or not lines:
    raise SystemExit(
      f"{config_name}@{batch_size} with XLA_FLAGS={env.get('XLA_FLAGS')!r} failed:\n{done.stderr[-2000:]}"
    )
  return json.loads(lines[0][len("RESULT ") :])


def main() -> None:
  if len(sys.argv) == 4 and sys.argv[1] == "--child":
    child(sys.argv[2], int(sys.argv[3]))
    return
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="model@batch, model one of " + ", ".join(CONFIGS))
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--variant", action="append", default=[], help="NAME=XLA_FLAGS, measured besides xla and gdjax")
  args = parser.parse_args()
  variants: dict[str, str | None] = {"xla": "", "gdjax": None}
  for item in args.variant:
    name, _, flags = item.partition("=")
    variants[name] = flags

  sys.path.insert(0, os.path.dirname(__file__))
  from common import print_table, write_results

  rows = []
  for run in args.runs:
    model, _, batch = run.partition("@")
    if model not in CONFIGS or not batch.isdigit():
      raise SystemExit(f"--runs takes model@batch with model one of {', '.join(CONFIGS)}, e.g. cnn@64; got {run!r}.")
    rates: dict[str, list[float]] = {name: [] for name in variants}
    flags_used: dict[str, str] = {}
    for _ in range(args.rounds):
      for name, flags in variants.items():
        result = measure(CONFIGS[model], int(batch), flags)
        rates[name].append(result["steps_per_s"])
        flags_used[name] = result["xla_flags"]
    for name in variants:
      ratios = [a / b for a, b in zip(rates[name], rates["xla"], strict=True)]
      rows.append(
        {
          "key": f"{run}/{name}",
          "run": run,
          "variant": name,
          "xla_flags_used": flags_used[name],
          "steps_per_s": statistics.median(rates[name]),
          "ratio_to_xla": statistics.median(ratios),
          "rates": rates[name],
          "rounds": args.rounds,
        }
      )
      print(f"{run} {name}: {rows[-1]['steps_per_s']:.2f} steps/s, {rows[-1]['ratio_to_xla']:.3f}x xla", flush=True)
  print_table(
    rows,
    [
      ("run", "model@batch"),
      ("variant", "variant"),
      ("steps_per_s", "steps/s (median)"),
      ("ratio_to_xla", "ratio to xla"),
    ],
  )
  print("wrote", write_results("xla_cpu_flags", rows, merge_key="key"))


if __name__ == "__main__":
  main()
