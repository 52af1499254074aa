"""Training speed of every classifier config, and of its input pipeline alone.

For each config in `configs/` (CNN, MLP, linear SVM) it prints the train
step's compile time, steps/s and examples/s on real Fashion-MNIST batches,
and the input pipeline's examples/s when nothing consumes them. The pipeline
must deliver at least 5x what the step consumes.

Run:
  .venv/bin/python benchmarks/classifier_throughput.py [--steps 200] [--repeats 5]

Rates are medians over `--repeats` timed windows after a warm-up, so one
noisy moment on a shared machine does not decide the figure.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import CLASSIFIER_CONFIGS, load_config, median_rate, print_table, timed, write_results  # noqa: E402

from gdjax import data, parallel, tasks  # noqa: E402


def measure(config_name: str, steps: int, repeats: int) -> dict:
  config = load_config(config_name)
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh()
  builder = data.get_builder(config.dataset)
  image_shape = tuple(builder.info.features["image"].shape)
  init_state = functools.partial(task.init_state, image_shape=image_shape)
  rng = jax.random.key(0)
  shapes = jax.eval_shape(init_state, rng)
  state = jax.jit(init_state, out_shardings=parallel.state_shardings(shapes, mesh))(rng)
  sharding = parallel.batch_sharding(mesh)

  # Input pipeline alone: NumPy batches out of tf.data, nothing consuming them.
  local_batches = data.train_batches(builder, config.dataset, global_batch_size=config.batch_size, seed=0)
  for _ in range(20):
    next(local_batches)
  pipeline_seconds = []
  for _ in range(repeats):
    _, seconds = timed(lambda: [next(local_batches) for _ in range(steps)])
    pipeline_seconds.append(seconds)
  pipeline_examples_per_sec = median_rate(steps * config.batch_size, pipeline_seconds)

  # Train step: compile once, then time windows of `steps` steps fed by the pipeline.
  batches = parallel.prefetch_to_mesh(local_batches, sharding)
  batch = next(batches)
  train_step = parallel.jit_train_step(task.train_step, shapes, mesh)
  compiled, compile_seconds = timed(lambda: train_step.lower(state, batch, rng).compile())
  state, metrics = compiled(state, batch, rng)
  jax.block_until_ready(metrics)
  step_seconds = []
  for _ in range(repeats):

    def window(state=state):
      for _ in range(steps):
        state, metrics = compiled(state, next(batches), rng)
      jax.block_until_ready(metrics)
      return state

    state, seconds = timed(window)
    step_seconds.append(seconds)
  steps_per_sec = median_rate(steps, step_seconds)
  examples_per_sec = steps_per_sec * config.batch_size
  return {
    "config": config_name,
    "batch_size": config.batch_size,
    "compile_s": compile_seconds,
    "steps_per_s": steps_per_sec,
    "examples_per_s": examples_per_sec,
    "pipeline_examples_per_s": pipeline_examples_per_sec,
    "pipeline_headroom": pipeline_examples_per_sec / examples_per_sec,
    "step_s_spread": float(np.ptp(step_seconds) / np.median(step_seconds)),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=100, help="steps per timed window")
  parser.add_argument("--repeats", type=int, default=5, help="timed windows; the median is reported")
  parser.add_argument("--configs", nargs="*", default=list(CLASSIFIER_CONFIGS))
  args = parser.parse_args()
  rows = [measure(name, args.steps, args.repeats) for name in args.configs]
  print_table(
    rows,
    [
      ("config", "config"),
      ("batch_size", "batch"),
      ("compile_s", "compile s"),
      ("steps_per_s", "steps/s"),
      ("examples_per_s", "examples/s"),
      ("pipeline_examples_per_s", "pipeline examples/s"),
      ("pipeline_headroom", "pipeline / step"),
    ],
  )
  short = [r for r in rows if r["pipeline_headroom"] < 5]
  print("pipeline >= 5x step consumption:", "yes" if not short else f"NO for {[r['config'] for r in short]}")
  print(
    "wrote", write_results("classifier_throughput", rows, merge_key="config", steps=args.steps, repeats=args.repeats)
  )


if __name__ == "__main__":
  main()
