"""FID, KID, precision and recall of every GAN config over seeds, next to the real-data floor.

For each config and seed it runs `gdjax train` for the config's own number of
steps and reads the final evaluation (EMA generator, 10,000 samples against
the 10,000 test images, gdjax's Fashion-MNIST classifier features). It prints
mean ± sample standard deviation (ddof 1) over the seeds, the training time,
and the floor: the same metrics for the real test images against the real training set.

A workdir that already holds a finished run of the same config and seed is
read, not retrained, so an interrupted table can be completed by running the
same command again.

Run (each config takes 5-15 minutes per seed on a 2-core CPU):
  .venv/bin/python benchmarks/gan_quality.py --seeds 0 1 2 [--configs dcgan_fashion_mnist ...]
  .venv/bin/python benchmarks/gan_quality.py --configs   # the real-data floor only (about a minute)
  .venv/bin/python benchmarks/gan_quality.py --no_train  # the table from the finished runs only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def final_eval(workdir: Path, total_steps: int) -> dict | None:
  """The evaluation record at `total_steps`, or None if the run has not finished."""
  metrics_file = workdir / "metrics.jsonl"
  if not metrics_file.exists():
    return None
  records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
  finished = [r for r in records if r["split"] == "eval" and r["step"] == total_steps]
  return finished[-1] if finished else None


def train_and_read(config_name: str, seed: int, workdir: Path) -> dict:
  """Trains one config and seed (unless `workdir` already holds the finished run) and reads its final eval."""
  total_steps = load_config(config_name).total_steps
  timing_file = workdir / "benchmark_timing.json"
  final = final_eval(workdir, total_steps)
  if final is not None:
    recorded_seed = json.loads((workdir / "config.json").read_text()).get("seed")
    if recorded_seed != seed:
      raise SystemExit(
        f"{workdir} holds a run with seed {recorded_seed}, not {seed}; move it away or pick another --workdir_root."
      )
    print(f"{config_name} seed {seed}: reusing the finished run in {workdir}", flush=True)
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    return {**final, **timing, "reused": True}
  gdjax = str(Path(sys.executable).with_name("gdjax"))
  start = time.perf_counter()
  children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
  subprocess.run(
    [gdjax, "train", "--config", str(REPO / "configs" / f"{config_name}.py"), "--workdir", str(workdir)]
    + [f"--config.seed={seed}", "--config.progress_bar=False"],
    check=True,
  )
  children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu_seconds = sum(getattr(children_after, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime"))
  # Wall-clock minutes depend on what else the machine runs; CPU minutes much less so.
  timing = {"train_minutes": (time.perf_counter() - start) / 60, "train_cpu_minutes": cpu_seconds / 60}
  timing_file.write_text(json.dumps(timing))
  return {**final_eval(workdir, total_steps), **timing, "reused": False}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--configs", nargs="*", default=config_names("gan"))
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--workdir_root", default=str(REPO / "workdirs" / "gan_quality"))
  parser.add_argument("--skip_floor", action="store_true")
  parser.add_argument(
    "--no_train", action="store_true", help="report the finished runs only; list the missing ones instead of training"
  )
  args = parser.parse_args()

  runs, rows = [], []
  for name in args.configs:
    per_seed = []
    for seed in args.seeds:
      workdir = Path(args.workdir_root) / f"{name}_seed{seed}"
      if args.no_train and final_eval(workdir, load_config(name).total_steps) is None:
        print(f"{name} seed {seed}: NOT RUN (no finished run in {workdir})", flush=True)
        continue
      result = train_and_read(name, seed, workdir)
      per_seed.append(result)
      runs.append({"config": name, "seed": seed, **result})
      minutes = f"{result['train_minutes']:.1f} min" if "train_minutes" in result else "time not recorded"
      print(f"{name} seed {seed}: FID {result['fid']:.3f} ({minutes})", flush=True)
    row = {"config": name, "steps": load_config(name).total_steps, "seeds": len(per_seed)}
    if not per_seed:
      continue
    for metric in METRICS + ("train_minutes", "train_cpu_minutes"):
      values = [r[metric] for r in per_seed if metric in r]
      if values:
        spread = f" ± {np.std(values, ddof=1):.2g}" if len(values) > 1 else " (one seed)"
        row[metric] = f"{np.mean(values):.4g}{spread}"
    rows.append(row)
  floor = {}
  if not args.skip_floor:
    floor = real_data_floor()
    rows.append({"config": "real test vs real train (floor)", **{m: f"{floor[m]:.4g}" for m in METRICS if m in floor}})
  columns = [
    ("config", "config"),
    ("steps", "steps"),
    ("seeds", "seeds"),
    ("fid", "FID"),
    ("kid", "KID"),
    ("precision", "precision"),
  ]
  columns += [
    ("recall", "recall"),
    ("classifier_score", "classifier score"),
    ("intended_class_accuracy", "intended class"),
  ]
  columns += [("train_cpu_minutes", "train CPU min"), ("train_minutes", "train min")]
  print_table(rows, columns)
  source = runs[0] if runs else floor
  protocol = {k: source.get(k) for k in ("feature_network_sha256", "reference_split", "num_real", "num_generated")}
  protocol["weights"] = source.get("weights")
  print("protocol:", protocol)
  print("wrote", write_results("gan_quality", rows, runs=runs, protocol=protocol))


if __name__ == "__main__":
  main()
