"""The training loop: set-up, resume, steps, logging, evaluation, checkpoints.

It reads top to bottom in sections. Everything that can fail on bad input
(config, dataset, workdir) runs before anything is written, so a run that
fails to start leaves an existing workdir exactly as it was.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from gdjax import checkpoint, data, evaluators, parallel, tasks
from gdjax.errors import GdjaxError
from gdjax.metric_writers import MetricWriter

log = logging.getLogger(__name__)


class TrainingDivergedError(GdjaxError):
  """A loss or gradient became NaN or Inf."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Returns the final metrics of the task's evaluator.
  """
  workdir = Path(workdir)

  # --- Set-up and validation: nothing is written until all of it passes.
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh()
  parallel.check_global_batch_size(task.examples_per_step)
  parallel.check_global_batch_size(config.eval_batch_size)
  builder = data.get_builder(config.dataset)
  config.input_shape = tuple(builder.info.features["image"].shape)
  evaluator = evaluators.build_evaluator(task, config, builder, mesh, workdir=workdir)
  checkpoint.check_or_write_workdir_config(workdir, config)

  # --- State: restored from the latest checkpoint, or initialised.
  replicated = parallel.replicated_sharding(mesh)
  batch_sharding = parallel.batch_sharding(mesh)
  root_rng = jax.random.key(config.seed)
  init_rng, step_rng = jax.random.split(root_rng)
  image_shape = tuple(config.input_shape)
  init_state = functools.partial(task.init_state, image_shape=image_shape)
  state_shapes = jax.eval_shape(init_state, init_rng)
  state_sharding = parallel.state_shardings(state_shapes, mesh)
  manager = checkpoint.open_manager(
    workdir,
    keep_last=config.checkpoint.keep_last,
    keep_best=config.checkpoint.keep_best,
    best_metric=task.best_metric,
    best_mode=task.best_mode,
  )
  if manager.latest_step() is not None:
    state = checkpoint.restore(manager, checkpoint.abstract_with_sharding(state_shapes, replicated))
    log.info("Resumed from step %d in %s", int(state.step), workdir)
  else:
    state = jax.jit(init_state, out_shardings=state_sharding)(init_rng)
  start_step = int(jax.device_get(state.step))

  # --- Compiled steps: data-parallel over the mesh, state buffers donated.
  train_step = parallel.jit_train_step(task.train_step, state_shapes, mesh)

  # --- Input: per-process batches, resumed at the checkpoint's step.
  train_batches = parallel.prefetch_to_mesh(
    data.train_batches(
      builder,
      config.dataset,
      global_batch_size=task.examples_per_step,
      seed=config.seed,
      start_step=start_step,
    ),
    batch_sharding,
  )

  # --- Loop.
  writer = MetricWriter(workdir)
  total_steps = config.total_steps
  pending_metrics = []  # Device arrays; fetched only on log steps, so no per-step host sync.
  eval_metrics = {}
  last_log_time, last_log_step = time.perf_counter(), start_step
  progress = tqdm(
    total=total_steps,
    initial=start_step,
    unit="step",
    dynamic_ncols=True,
    disable=jax.process_index() != 0 or not config.get("progress_bar", True),
    mininterval=1.0,
  )
  try:
    for step in range(start_step + 1, total_steps + 1):
      state, metrics = train_step(state, next(train_batches), step_rng)
      pending_metrics.append(metrics)
      progress.update(1)

      is_checkpoint_step = step % config.checkpoint.every_steps == 0 or step == total_steps
      # Metrics are checked on every checkpoint step too, so a diverged state
      # is never saved over the last good one.
      if step % config.log_every_steps == 0 or is_checkpoint_step:
        summary = _mean_metrics(jax.device_get(pending_metrics))
        pending_metrics = []
        _raise_if_not_finite(summary, step)
        now = time.perf_counter()
        summary["steps_per_sec"] = (step - last_log_step) / (now - last_log_time)
        summary["examples_per_sec"] = summary["steps_per_sec"] * task.examples_per_step
        last_log_time, last_log_step = now, step
        writer.write(step, "train", summary)
        progress.set_postfix({k: f"{summary[k]:.4f}" for k in task.progress_metrics}, refresh=False)

      is_eval_step = step % config.eval_every_steps == 0 or step == total_steps
      if is_eval_step:
        eval_metrics = evaluator.run(state, step)
        writer.write(step, "eval", eval_metrics)
        progress.write(f"step {step}: eval " + _format_metrics(eval_metrics))
      if is_checkpoint_step:
        checkpoint.save(manager, state, config, step=step, metrics=_numeric(eval_metrics) if is_eval_step else None)
    if start_step >= total_steps:
      eval_metrics = evaluator.run(state)
  finally:
    progress.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
  return eval_metrics


def _numeric(metrics: dict) -> dict:
  return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _format_metrics(metrics: dict) -> str:
  return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _mean_metrics(per_step: list[dict]) -> dict:
  return {k: float(np.mean([m[k] for m in per_step])) for k in per_step[0]}


def _raise_if_not_finite(summary: dict, step: int) -> None:
  for name, value in summary.items():
    if not math.isfinite(value):
      raise TrainingDivergedError(
        f"Training diverged: {name} is {value} at step {step} (averaged over the "
        "last log interval). The last checkpoint before it is kept. Lower "
        "--config.optimizer.learning_rate or set --config.optimizer.grad_clip_norm."
      )
