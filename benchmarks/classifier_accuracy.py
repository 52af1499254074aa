"""Fashion-MNIST test accuracy of each classifier config, measured as a user would.

For each config it runs `gdjax train` (timing the whole command), then
`gdjax predict` on the raw test images read straight from the IDX files, and
compares the predictions with the raw test labels. Nothing here goes through
gdjax's input pipeline, so the figure checks it as well.

Run (about 25 minutes on a 2-core CPU for all three):
  .venv/bin/python benchmarks/classifier_accuracy.py [--configs cnn_fashion_mnist ...]

Each config's docstring states the accuracy and time this script measured.
The test split is used only here: configs are tuned on the validation split
(the last 6,000 training images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import CLASSIFIER_CONFIGS, REPO, print_table, write_results  # noqa: E402

from gdjax.data import fashion_mnist_local  # noqa: E402

TARGETS = {"cnn_fashion_mnist": 0.930, "mlp_fashion_mnist": 0.890, "linear_svm_fashion_mnist": 0.845}
GDJAX = str(Path(sys.executable).with_name("gdjax"))


def run(args: list[str]) -> float:
  start = time.perf_counter()
  subprocess.run(args, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--configs", nargs="*", default=list(CLASSIFIER_CONFIGS))
  parser.add_argument("--workdir_root", default=str(REPO / "workdirs" / "accuracy"))
  parser.add_argument("--fresh", action="store_true", help="delete earlier workdirs first instead of resuming them")
  args = parser.parse_args()

  images, labels = fashion_mnist_local.load_split_arrays(fashion_mnist_local.default_local_dir(), "test")
  scratch = Path(tempfile.mkdtemp())
  np.save(scratch / "test_images.npy", images)
  rows = []
  for name in args.configs:
    workdir = Path(args.workdir_root) / name
    if args.fresh and workdir.exists():
      import shutil

      shutil.rmtree(workdir)
    train_seconds = run(
      [
        GDJAX,
        "train",
        "--config",
        str(REPO / "configs" / f"{name}.py"),
        "--workdir",
        str(workdir),
        "--config.progress_bar=False",
      ]
    )
    out = scratch / f"{name}_labels.npy"
    run([GDJAX, "predict", "--workdir", str(workdir), "--images", str(scratch / "test_images.npy"), "--out", str(out)])
    accuracy = float(np.mean(np.load(out) == labels))
    evals = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    rows.append(
      {
        "config": name,
        "validation_accuracy": evals[-1]["accuracy"],
        "test_accuracy": accuracy,
        "target": TARGETS.get(name),
        "meets_target": accuracy >= TARGETS.get(name, 0.0),
        "train_minutes": train_seconds / 60,
      }
    )
  print_table(
    rows,
    [
      ("config", "config"),
      ("validation_accuracy", "validation accuracy"),
      ("test_accuracy", "test accuracy"),
      ("target", "target"),
      ("meets_target", "met"),
      ("train_minutes", "train minutes"),
    ],
  )
  print("wrote", write_results("classifier_accuracy", rows, merge_key="config"))


if __name__ == "__main__":
  main()
