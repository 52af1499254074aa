"""FID, KID, precision and recall of every GAN config over seeds, next to the real-data floor.

For each config and seed it runs `gdjax train` for the config's own number of
steps and reads the final evaluation (EMA generator, 10,000 samples against
the 10,000 test images, gdjax's Fashion-MNIST classifier features). It prints
mean ± standard deviation over the seeds, the training time, and the floor:
the same metrics for the real test images against the real training set.

Run (each config takes 5-15 minutes per seed on a 2-core CPU):
  .venv/bin/python benchmarks/gan_quality.py --seeds 0 1 2 [--configs dcgan_fashion_mnist ...]
  .venv/bin/python benchmarks/gan_quality.py --configs   # the real-data floor only (about a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from common import REPO, config_names, load_config, print_table, write_results  # noqa: E402

from gdjax import data, parallel, tasks  # noqa: E402
from gdjax.data import fashion_mnist_local  # noqa: E402
from gdjax.evaluators.generative import GenerativeEvaluator  # noqa: E402

METRICS = ("fid", "kid", "precision", "recall", "classifier_score", "intended_class_accuracy")


def real_data_floor() -> dict:
  """Metrics of the real test images against the real training set."""
  config = load_config("dcgan_fashion_mnist")
  config.evaluation.reference_split = "train"
  builder = data.get_builder(config.dataset)
  evaluator = GenerativeEvaluator(tasks.build_task(config), builder, parallel.make_data_mesh(), config.evaluation)
  test_images, _ = fashion_mnist_local.load_split_arrays(fashion_mnist_local.default_local_dir(), "test")
  return evaluator.score_images(test_images[..., None])


def train_and_read(config_name: str, seed: int, workdir: Path) -> dict:
  gdjax = str(Path(sys.executable).with_name("gdjax"))
  start = time.perf_counter()
  subprocess.run(
    [gdjax, "train", "--config", str(REPO / "configs" / f"{config_name}.py"), "--workdir", str(workdir)]
    + [f"--config.seed={seed}", "--config.progress_bar=False"],
    check=True,
  )
  seconds = time.perf_counter() - start
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  final = [r for r in records if r["split"] == "eval"][-1]
  return {**final, "train_minutes": seconds / 60}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--configs", nargs="*", default=config_names("gan"))
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--workdir_root", default=str(REPO / "workdirs" / "gan_quality"))
  parser.add_argument("--skip_floor", action="store_true")
  args = parser.parse_args()

  runs, rows = [], []
  for name in args.configs:
    per_seed = []
    for seed in args.seeds:
      result = train_and_read(name, seed, Path(args.workdir_root) / f"{name}_seed{seed}")
      per_seed.append(result)
      runs.append({"config": name, "seed": seed, **result})
      print(f"{name} seed {seed}: FID {result['fid']:.3f} in {result['train_minutes']:.1f} min", flush=True)
    row = {"config": name, "steps": load_config(name).total_steps, "seeds": len(per_seed)}
    for metric in METRICS + ("train_minutes",):
      values = [r[metric] for r in per_seed if metric in r]
      if values:
        row[metric] = f"{np.mean(values):.4g} ± {np.std(values):.2g}"
    rows.append(row)
  floor = {}
  if not args.skip_floor:
    floor = real_data_floor()
    rows.append({"config": "real test vs real train (floor)", **{m: f"{floor[m]:.4g}" for m in METRICS if m in floor}})
  columns = [("config", "config"), ("steps", "steps"), ("fid", "FID"), ("kid", "KID"), ("precision", "precision")]
  columns += [
    ("recall", "recall"),
    ("classifier_score", "classifier score"),
    ("intended_class_accuracy", "intended class"),
  ]
  columns += [("train_minutes", "train min")]
  print_table(rows, columns)
  source = runs[0] if runs else floor
  protocol = {k: source.get(k) for k in ("feature_network_sha256", "reference_split", "num_real", "num_generated")}
  protocol["weights"] = source.get("weights")
  print("protocol:", protocol)
  print("wrote", write_results("gan_quality", rows, runs=runs, protocol=protocol))


if __name__ == "__main__":
  main()
