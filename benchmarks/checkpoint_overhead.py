"""What asynchronous Orbax checkpointing adds to step time at a config's checkpoint interval.

For each config it times windows of `every_steps` train steps (the config's
`checkpoint.every_steps`, unless --every_steps is given), fed by the real
input pipeline and logging like the loop does. Windows alternate: one that
starts with `gdjax.checkpoint.save` (asynchronous: it returns once the arrays
are copied off the device, and the write runs beside the following steps),
then one without. A window with a save ends with `wait_until_finished`, so a
write slower than the interval counts against it, as it would at the next
save. The overhead is the median window with a save over the median window
without, minus one. The target is under 5 %.

Run (from the repository root):
  .venv/bin/python -m benchmarks.checkpoint_overhead [--configs mlp_fashion_mnist linear_svm_fashion_mnist] [--repeats 5]
  .venv/bin/python -m benchmarks.checkpoint_overhead --every_steps 20 --repeats 1   # a quick check that it runs

Writes benchmarks/results/checkpoint_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import jax  # noqa: I001

from benchmarks import common  # Before JAX starts: applies gdjax's default XLA flags.
from gdjax import checkpoint, data, parallel, run_state, tasks

DEFAULT_CONFIGS = ("mlp_fashion_mnist", "linear_svm_fashion_mnist", "cnn_fashion_mnist", "dcgan_fashion_mnist")


def measure(config_name: str, repeats: int, every_steps: int | None) -> dict:
  config = common.load_config(config_name)
  every_steps = every_steps or config.checkpoint.every_steps
  builder = data.get_builder(config.dataset)
  config.input_shape = tuple(builder.info.features["image"].shape)
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh()
  run = run_state.create_or_restore(task, mesh, image_shape=config.input_shape, seed=config.seed)
  state = run.state
  _, rng = run_state.root_keys(config.seed)
  parallelism = config.get("parallelism", "jit")
  train_step = parallel.compile_train_step(task, run.shapes, mesh, parallelism=parallelism)
  batches = parallel.prefetch_to_mesh(
    data.train_batches(builder, config.dataset, global_batch_size=task.examples_per_step, seed=config.seed),
    parallel.batch_sharding(mesh),
    device_axis=parallelism == "pmap",
  )

  with tempfile.TemporaryDirectory(prefix="gdjax_ckpt_bench_") as workdir:
    manager = checkpoint.open_manager(workdir, keep_last=config.checkpoint.keep_last)
    step = 0

    def window(save: bool) -> tuple[float, float]:
      """Seconds for `every_steps` steps (starting with a save, if `save`), and seconds inside `save`."""
      nonlocal state, step
      start = time.perf_counter()
      save_seconds = 0.0
      pending = []
      for index in range(every_steps):
        state, metrics = train_step(state, next(batches), rng)
        step += 1
        pending.append(metrics)
        if save and index == 0:
          before = time.perf_counter()
          checkpoint.save(manager, state, config, step=step)
          save_seconds = time.perf_counter() - before
        if step % config.log_every_steps == 0:  # The loop's one host sync per log interval.
          jax.device_get(pending)
          pending = []
      jax.block_until_ready(state)
      if save:
        manager.wait_until_finished()
      return time.perf_counter() - start, save_seconds

    window(save=True)  # Warm-up: compilation, the first save's set-up.
    window(save=False)
    with_save, without_save, inside_save = [], [], []
    for _ in range(repeats):
      seconds, blocking = window(save=True)
      with_save.append(seconds)
      inside_save.append(blocking)
      without_save.append(window(save=False)[0])
    checkpoint_bytes = sum(p.stat().st_size for p in Path(workdir, "checkpoints").rglob("*") if p.is_file())
    checkpoint_bytes /= max(len(manager.all_steps()), 1)
    manager.close()

  median_with, median_without = statistics.median(with_save), statistics.median(without_save)
  return {
    "config": config_name,
    "every_steps": every_steps,
    "repeats": repeats,
    "window_s_with_save": median_with,
    "window_s_without_save": median_without,
    "step_ms_without_save": 1000 * median_without / every_steps,
    "save_call_s": statistics.median(inside_save),
    "checkpoint_mb": checkpoint_bytes / 1e6,
    "overhead_pct": 100 * (median_with / median_without - 1),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS))
  parser.add_argument("--repeats", type=int, default=3, help="pairs of windows (with and without a save)")
  parser.add_argument("--every_steps", type=int, default=None, help="default: each config's checkpoint.every_steps")
  args = parser.parse_args()
  rows = [measure(name, args.repeats, args.every_steps) for name in args.configs]
  common.print_table(
    rows,
    [
      ("config", "config"),
      ("every_steps", "interval"),
      ("step_ms_without_save", "step ms"),
      ("save_call_s", "save() s"),
      ("checkpoint_mb", "MB"),
      ("window_s_without_save", "window s, no save"),
      ("window_s_with_save", "window s, save"),
      ("overhead_pct", "overhead %"),
    ],
  )
  over = [r["config"] for r in rows if r["overhead_pct"] >= 5]
  print("async checkpoint overhead < 5 %:", "yes" if not over else f"NO for {over}")
  quick = args.every_steps is not None
  name = "checkpoint_overhead" + ("_quick" if quick else "")
  print("wrote", common.write_results(name, rows, merge_key="config"))


if __name__ == "__main__":
  main()
