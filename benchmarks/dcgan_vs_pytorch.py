"""gdjax's DCGAN against a PyTorch reference of the same model, scored by one FID.

Both sides train `configs/gan_recipes/seed_recipe.py`'s model (architecture,
non-saturating loss, Adam 2e-4 / beta1 0.5, batch 64, EMA 0.999 with the same
warm-up; `benchmarks.torch_dcgan`) for the same number of steps on the same
images (the config's `dataset.train_split`), each with its own seed. Then:

- gdjax: `gdjax train --config configs/gan_recipes/seed_recipe.py
  --config.seed=S --config.total_steps=N` in its own process, as a user runs
  it; the finished run is read back with `gdjax.inference.TrainedModel` and
  its EMA generator draws sample ids 0..9,999 under sample seed 12345;
- PyTorch: trained in this process; its EMA generator draws 10,000 samples
  from a torch generator seeded 12345;
- one `sample_quality` evaluator (gdjax's feature network and the options of
  the config's `evals.quality` entry) scores both sets of uint8 images
  against the test split.

The check: gdjax's mean FID over the seeds is within 10 % of the
reference's, or better.

Finished runs are reused: a gdjax workdir whose metrics already hold the
final step's evaluation is read rather than retrained, and PyTorch's samples
are cached next to it, so an interrupted comparison resumes where it
stopped. Training times are wall-clock and CPU seconds (user + system);
gdjax's are the whole `gdjax train` command's (start-up, compilation and the
run's own final evaluation included). On a shared machine compare the CPU
seconds.

Run from the repository root (about 15 minutes per seed on a 2-core CPU):
  pip install -e '.[bench]'
  python -m benchmarks.dcgan_vs_pytorch --steps 3000 --seeds 0 1 2
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

import numpy as np
import torch

from benchmarks import common, torch_dcgan
from gdjax import data, evaluators, inference, parallel
from gdjax.evaluators import sample_quality

CONFIG = "gan_recipes/seed_recipe"  # The seed DCGAN recipe (plain D), the model the twin copies.
NUM_SAMPLES = 10_000
SAMPLE_SEED = 12345  # Both sides draw their samples with this seed.
SPLIT = "test"
# Fields of a `config.evals` entry that the evaluation runner reads, not the evaluator; and the split, set here.
NOT_EVALUATOR_OPTIONS = ("type", "every_steps", "use_ema", "split")


def final_eval_record(workdir: Path, steps: int) -> dict | None:
  """The run's evaluation record at `steps` in `metrics.jsonl`, or None if the run has not got there."""
  metrics_file = workdir / "metrics.jsonl"
  if not metrics_file.exists():
    return None
  records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
  finished = [r for r in records if r.get("split") == "eval" and r.get("step") == steps]
  return finished[-1] if finished else None


def train_gdjax(seed: int, steps: int, workdir: Path) -> tuple[np.ndarray, dict]:
  """Trains gdjax's DCGAN with `gdjax train` (unless `workdir` holds the finished run); samples its EMA generator."""
  timing_file = workdir / "benchmark_timing.json"
  if final_eval_record(workdir, steps) is None:
    command = [str(Path(sys.executable).with_name("gdjax")), "train"]
    command += ["--config", str(common.REPO / "configs" / f"{CONFIG}.py"), "--workdir", str(workdir)]
    command += [f"--config.seed={seed}", f"--config.total_steps={steps}", "--config.progress_bar=False"]
    # Evaluations and checkpoints at the last step only: the comparison scores the final generator.
    command += [f"--config.eval_every_steps={steps}", f"--config.checkpoint.every_steps={steps}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timing_file.write_text(json.dumps({"train_s": time.perf_counter() - start, "train_cpu_s": cpu_s}))
  else:
    print(f"gdjax seed {seed}: reusing the finished run in {workdir}", flush=True)
  model = inference.TrainedModel(workdir)
  if model.step != steps or model.config.seed != seed:
    raise SystemExit(
      f"{workdir} holds step {model.step} of seed {model.config.seed}, not step {steps} of seed {seed}; "
      "move it away or pick another --workdir_root."
    )
  timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
  return model.sample(NUM_SAMPLES, seed=SAMPLE_SEED), timing


def train_torch(seed: int, steps: int, train_images: np.ndarray, cache: Path) -> tuple[np.ndarray, dict]:
  """Trains the PyTorch reference (unless `cache` holds its samples) and samples its EMA generator."""
  if cache.exists():
    print(f"pytorch seed {seed}: reusing the samples in {cache}", flush=True)
    with np.load(cache) as saved:
      return saved["samples"], {k: float(saved[k]) for k in ("train_s", "train_cpu_s") if k in saved}
  start, cpu_start = time.perf_counter(), time.process_time()
  trainer = torch_dcgan.train(train_images, steps=steps, seed=seed)
  timing = {"train_s": time.perf_counter() - start, "train_cpu_s": time.process_time() - cpu_start}
  samples = trainer.sample_uint8(NUM_SAMPLES, seed=SAMPLE_SEED)
  cache.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(cache, samples=samples, **timing)
  return samples, timing


def quality_evaluator(config) -> sample_quality.Evaluator:
  """The evaluator of the config's `evals.quality` entry, on the test split, for images from anywhere."""
  options = {k: v for k, v in config.evals.quality.to_dict().items() if k not in NOT_EVALUATOR_OPTIONS}
  context = evaluators.EvalContext(parallel.make_data_mesh(), data.get_builder(config.dataset), None)
  return sample_quality.Evaluator(inference={}, context=context, split=SPLIT, **options)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=3000)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--workdir_root", default=str(common.REPO / "workdirs" / "dcgan_vs_pytorch"))
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count() or 1)

  config = common.load_config(CONFIG)
  evaluator = quality_evaluator(config)
  train_images = data.load_split(evaluator.context.builder, config.dataset.train_split, whole=True)["image"]

  rows = []
  for seed in args.seeds:
    for framework in ("gdjax", "pytorch"):
      if framework == "gdjax":
        workdir = Path(args.workdir_root) / f"gdjax_seed{seed}_steps{args.steps}"
        images, timing = train_gdjax(seed, args.steps, workdir)
      else:
        cache = Path(args.workdir_root) / f"pytorch_seed{seed}_steps{args.steps}.npz"
        images, timing = train_torch(seed, args.steps, train_images, cache)
      metrics = evaluator.score_images(images)
      rows.append({"framework": framework, "seed": seed, "steps": args.steps, **timing, **metrics})
      spent = f"train {timing['train_s']:.0f} s" if "train_s" in timing else "train time not recorded"
      print(f"{framework} seed {seed}: FID {metrics['fid']:.3f}, {spent}", flush=True)

  columns = [("framework", "framework"), ("seed", "seed"), ("fid", "FID"), ("kid", "KID"), ("precision", "precision")]
  columns += [("recall", "recall"), ("classifier_score", "classifier score")]
  columns += [("train_s", "train s"), ("train_cpu_s", "train CPU s")]
  common.print_table(rows, columns)
  fid = {f: np.array([r["fid"] for r in rows if r["framework"] == f]) for f in ("gdjax", "pytorch")}
  for framework, values in fid.items():
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    print(f"{framework}: FID {values.mean():.3f} ± {spread:.3f} (sample std) over seeds {args.seeds}")
  ratio = fid["gdjax"].mean() / fid["pytorch"].mean()
  print(f"gdjax / pytorch mean FID: {ratio:.3f} ({'within' if ratio <= 1.10 else 'NOT within'} 10 %)")
  protocol_keys = ("feature_network_sha256", "reference_split", "num_real", "num_generated")
  print("protocol:", {k: rows[0].get(k) for k in protocol_keys})
  print("wrote", common.write_results("dcgan_vs_pytorch", rows, fid_ratio=ratio))


if __name__ == "__main__":
  main()
