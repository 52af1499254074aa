"""The pinned GAN yardstick: the seed DCGAN recipe in PyTorch, PyTorch's default initialisation.

The recipe (`benchmarks.torch_dcgan` with `init="pytorch"`):
- G: dense 100 -> 7x7x128, batch norm, ReLU -> ConvTranspose 4x4/2 to 64,
  batch norm, ReLU -> ConvTranspose 4x4/2 to 1, tanh;
- D: conv 4x4/2 to 64 -> conv 4x4/2 to 128, each with leaky ReLU 0.2 -> dense 1;
- the non-saturating loss, Adam 2e-4 with beta1 0.5, batch 64, 20,000 steps,
  on the images of the default GAN config's `dataset.train_split`
  (`train[:54000]`), reshuffled every epoch;
- sampled with its raw weights (no EMA), batch norm in eval mode.

Each snapshot is also sampled with G's batch norm normalising each batch of
500 samples by its own statistics (on a copy of G), and scored the same way:
in inference mode a DCGAN generator's running statistics can lag its
weights, and the two columns show how much that costs the reference.

Each seed trains once. At every step of `--snapshots` it draws 10,000
samples (torch generator seeded 12345) and caches them, with the training
wall-clock and CPU seconds so far, in `<workdir_root>/seed<S>_step<N>.npz`;
a cached seed is not retrained. Then gdjax's evaluator scores every snapshot:
the `evals.quality` entry of `configs/dcgan_fashion_mnist.py` (FID, KID,
precision, recall, classifier score on gdjax's Fashion-MNIST classifier
features) against the test split, and `evals.coverage` (class shares,
smallest share, entropy). The table gives mean ± sd over the seeds at each
snapshot; `benchmarks/results/gan_reference.json` keeps every row.

Run from the repository root (20,000 steps take about 20 minutes per seed
with 2 threads on the 2-core CPU, 37 with 1):
  pip install -e '.[bench]'
  python -m benchmarks.gan_reference --seeds 0 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import common, torch_dcgan
from gdjax import data, evaluators, parallel
from gdjax.evaluators import class_coverage, sample_quality

CONFIG = "dcgan_fashion_mnist"
NUM_SAMPLES = 10_000
SAMPLE_SEED = 12345
STEPS = 20_000
SNAPSHOTS = (1000, 2000, 3000, 5000, 10_000, 15_000, 20_000)
# How G's batch norm normalises when sampling: the pinned recipe's inference mode (running
# statistics), and, for comparison, each batch of 500 samples by its own statistics.
BATCH_NORM_MODES = {"running statistics": "samples", "batch statistics": "batch_statistics_samples"}
# Fields of a `config.evals` entry that the evaluation runner reads, not the evaluator; the split is set here.
NOT_EVALUATOR_OPTIONS = ("type", "every_steps", "use_ema", "split", "num_samples", "sample_seed")


def snapshot_path(root: Path, seed: int, step: int) -> Path:
  return root / f"seed{seed}_step{step}.npz"


def train_seed(seed: int, train_images: np.ndarray, root: Path, snapshots: tuple[int, ...]) -> None:
  """Trains one seed to the last snapshot, caching raw-weight samples at each; skips a cached seed."""
  if all(snapshot_path(root, seed, step).exists() for step in snapshots):
    print(f"seed {seed}: every snapshot is cached in {root}", flush=True)
    return
  root.mkdir(parents=True, exist_ok=True)
  start, cpu_start = time.perf_counter(), time.process_time()
  excluded = {"wall": 0.0, "cpu": 0.0}  # Time spent sampling, not training.

  def on_step(step: int, trainer: torch_dcgan.DCGANTrainer) -> None:
    if step not in snapshots:
      return
    sample_start, sample_cpu = time.perf_counter(), time.process_time()
    samples = trainer.sample_uint8(NUM_SAMPLES, seed=SAMPLE_SEED, use_ema=False)
    batch_statistics_samples = trainer.sample_uint8(NUM_SAMPLES, seed=SAMPLE_SEED, use_ema=False, batch_statistics=True)
    train_s = sample_start - start - excluded["wall"]
    train_cpu_s = sample_cpu - cpu_start - excluded["cpu"]
    np.savez_compressed(
      snapshot_path(root, seed, step),
      samples=samples,
      batch_statistics_samples=batch_statistics_samples,
      train_s=train_s,
      train_cpu_s=train_cpu_s,
    )
    excluded["wall"] += time.perf_counter() - sample_start
    excluded["cpu"] += time.process_time() - sample_cpu
    print(f"seed {seed} step {step}: {train_s:.0f} s of training, samples cached", flush=True)

  torch_dcgan.train(train_images, steps=max(snapshots), seed=seed, init="pytorch", on_step=on_step, log_every=2000)


def build_evaluators(config, split: str):
  """The config's `evals.quality` and `evals.coverage` evaluators, on `split`, for images from anywhere."""
  context = evaluators.EvalContext(parallel.make_data_mesh(), data.get_builder(config.dataset), None)
  quality_options = {k: v for k, v in config.evals.quality.to_dict().items() if k not in NOT_EVALUATOR_OPTIONS}
  coverage_options = {k: v for k, v in config.evals.coverage.to_dict().items() if k not in NOT_EVALUATOR_OPTIONS}
  quality = sample_quality.Evaluator(inference={}, context=context, split=split, **quality_options)
  coverage = class_coverage.Evaluator(inference={}, context=context, **coverage_options)
  return quality, coverage


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--snapshots", type=int, nargs="+", default=list(SNAPSHOTS))
  parser.add_argument("--split", default="test", help="the split FID is measured against")
  parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 for every core")
  parser.add_argument("--workdir_root", default=str(common.REPO / "workdirs" / "gan_reference"))
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  root, snapshots = Path(args.workdir_root), tuple(sorted(args.snapshots))

  config = common.load_config(CONFIG)
  builder = data.get_builder(config.dataset)
  train_images = data.load_split(builder, config.dataset.train_split, whole=True)["image"]
  for seed in args.seeds:
    train_seed(seed, train_images, root, snapshots)

  quality, coverage = build_evaluators(config, args.split)
  rows = []
  for seed in args.seeds:
    for step in snapshots:
      with np.load(snapshot_path(root, seed, step)) as saved:
        cached = {key: saved[key] for key in saved.files}
      timing = {"train_s": float(cached["train_s"]), "train_cpu_s": float(cached["train_cpu_s"])}
      for batch_norm, key in BATCH_NORM_MODES.items():
        metrics = {**quality.score_images(cached[key]), **coverage.coverage(cached[key])}
        rows.append({"seed": seed, "step": step, "batch_norm": batch_norm, **timing, **metrics})
        print(
          f"seed {seed} step {step} ({batch_norm}): FID {metrics['fid']:.1f}, recall {metrics['recall']:.3f}, "
          f"smallest class share {metrics['min_class_share']:.3f}",
          flush=True,
        )

  summary = []
  for batch_norm in BATCH_NORM_MODES:
    for step in snapshots:
      at_step = [r for r in rows if r["step"] == step and r["batch_norm"] == batch_norm]
      entry = {"batch_norm": batch_norm, "step": step, "seeds": len(at_step)}
      for key in ("fid", "kid", "precision", "recall", "classifier_score", "min_class_share", "train_s"):
        values = np.array([r[key] for r in at_step])
        entry[key] = f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"
      summary.append(entry)
  columns = [("batch_norm", "G's batch norm"), ("step", "step"), ("seeds", "seeds"), ("fid", f"FID vs {args.split}")]
  columns += [("kid", "KID")]
  columns += [("precision", "precision"), ("recall", "recall"), ("classifier_score", "classifier score")]
  columns += [("min_class_share", "smallest class share"), ("train_s", "train s")]
  common.print_table(summary, columns)
  print("machine:", common.machine_description())
  print("wrote", common.write_results(f"gan_reference_{args.split}", rows, summary=summary))


if __name__ == "__main__":
  main()
