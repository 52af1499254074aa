"""gdjax's DCGAN against a PyTorch reference of the same model, scored by one FID.

Both sides train `configs/dcgan_fashion_mnist.py`'s model (architecture,
non-saturating loss, Adam 2e-4 / beta1 0.5, batch 64, EMA 0.999) for the
same number of steps on Fashion-MNIST's 60,000 training images. Each then
draws 10,000 uint8 samples from its EMA generator, and gdjax's evaluator
scores both sets the same way against the test split. The check: gdjax's
mean FID over the seeds is within 10 % of the reference's, or better.

Finished runs are reused: a gdjax workdir that already holds the run's final
step is sampled again rather than retrained, and PyTorch's samples are cached
next to it, so an interrupted comparison resumes where it stopped.

Run (about 15 minutes per seed on a 2-core CPU):
  pip install -e '.[bench]'
  .venv/bin/python benchmarks/dcgan_vs_pytorch.py --steps 3000 --seeds 0 1 2
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

import gan_quality  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch_dcgan  # noqa: E402
from common import REPO, load_config, print_table, write_results  # noqa: E402

from gdjax import data, inference, parallel, tasks  # noqa: E402
from gdjax.data import fashion_mnist_local  # noqa: E402
from gdjax.evaluators.generative import GenerativeEvaluator  # noqa: E402

CONFIG = "dcgan_fashion_mnist"
NUM_SAMPLES = 10_000


def train_gdjax(seed: int, steps: int, workdir: Path) -> tuple[np.ndarray, float | None]:
  """Trains gdjax's DCGAN (unless `workdir` holds the finished run) and samples its EMA generator."""
  timing_file = workdir / "benchmark_timing.json"
  if gan_quality.final_eval(workdir, steps) is None:
    start = time.perf_counter()
    gdjax = str(Path(sys.executable).with_name("gdjax"))
    config_path = str(REPO / "configs" / f"{CONFIG}.py")
    overrides = [f"--config.seed={seed}", f"--config.total_steps={steps}", "--config.progress_bar=False"]
    overrides += [f"--config.eval_every_steps={steps}", f"--config.checkpoint.every_steps={steps}"]
    subprocess.run([gdjax, "train", "--config", config_path, "--workdir", str(workdir), *overrides], check=True)
    timing_file.write_text(json.dumps({"train_s": time.perf_counter() - start}))
  else:
    print(f"gdjax seed {seed}: reusing the finished run in {workdir}", flush=True)
  seconds = json.loads(timing_file.read_text())["train_s"] if timing_file.exists() else None
  return inference.TrainedModel(workdir).sample(NUM_SAMPLES, seed=12345), seconds


def train_torch(seed: int, steps: int, train_images: np.ndarray, cache: Path) -> tuple[np.ndarray, float]:
  """Trains the PyTorch reference (unless `cache` holds its samples) and samples its EMA generator."""
  if cache.exists():
    print(f"pytorch seed {seed}: reusing the samples in {cache}", flush=True)
    with np.load(cache) as saved:
      return saved["samples"], float(saved["train_s"])
  start = time.perf_counter()
  trainer = torch_dcgan.train(train_images, steps=steps, seed=seed)
  seconds = time.perf_counter() - start
  samples = trainer.sample_uint8(NUM_SAMPLES, seed=12345)
  cache.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(cache, samples=samples, train_s=seconds)
  return samples, seconds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=3000)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--workdir_root", default=str(REPO / "workdirs" / "dcgan_vs_pytorch"))
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count() or 1)

  config = load_config(CONFIG)
  builder = data.get_builder(config.dataset)
  evaluator = GenerativeEvaluator(tasks.build_task(config), builder, parallel.make_data_mesh(), config.evaluation)
  train_images, _ = fashion_mnist_local.load_split_arrays(fashion_mnist_local.default_local_dir(), "train")
  train_images = train_images[..., None]

  rows = []
  for seed in args.seeds:
    workdir = Path(args.workdir_root) / f"gdjax_seed{seed}_steps{args.steps}"
    for framework in ("gdjax", "pytorch"):
      if framework == "gdjax":
        images, seconds = train_gdjax(seed, args.steps, workdir)
      else:
        cache = Path(args.workdir_root) / f"pytorch_seed{seed}_steps{args.steps}.npz"
        images, seconds = train_torch(seed, args.steps, train_images, cache)
      metrics = evaluator.score_images(images)
      rows.append({"framework": framework, "seed": seed, "steps": args.steps, "train_s": seconds, **metrics})
      timing = f"train {seconds:.0f}s" if seconds is not None else "train time not recorded"
      print(f"{framework} seed {seed}: FID {metrics['fid']:.3f}, {timing}", flush=True)

  columns = [("framework", "framework"), ("seed", "seed"), ("fid", "FID"), ("kid", "KID"), ("precision", "precision")]
  columns += [("recall", "recall"), ("classifier_score", "classifier score"), ("train_s", "train s")]
  print_table(rows, columns)
  fid = {f: np.array([r["fid"] for r in rows if r["framework"] == f]) for f in ("gdjax", "pytorch")}
  for framework, values in fid.items():
    print(
      f"{framework}: FID {values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f} (sample std) over seeds {args.seeds}"
    )
  ratio = fid["gdjax"].mean() / fid["pytorch"].mean()
  print(f"gdjax / pytorch mean FID: {ratio:.3f} ({'within' if ratio <= 1.10 else 'NOT within'} 10 %)")
  print(
    "protocol:", {k: rows[0][k] for k in ("feature_network_sha256", "reference_split", "num_real", "num_generated")}
  )
  print("wrote", write_results("dcgan_vs_pytorch", rows, fid_ratio=ratio))


if __name__ == "__main__":
  main()
