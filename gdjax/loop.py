"""The training loop: set-up, resume, steps, logging, evaluation, checkpoints, signals.

It reads top to bottom in sections. Everything that can fail on bad input
(config, dataset, workdir) runs before anything is written, so a run that
fails to start leaves an existing workdir exactly as it was.

Faults it handles: SIGTERM (a preemptible VM's notice) saves a checkpoint at
the next step boundary and ends the run with `TrainingPreempted`; a NaN or
Inf in the metrics or the new state stops the run naming the first bad step
and metric, before anything after it is saved (or, with
`config.skip_nonfinite_steps`, the step is discarded on the device and
counted); a second run on the same workdir is refused by its lock.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from gdjax import checkpoint, data, evaluators, generated_data, parallel, run_state, tasks
from gdjax.errors import ConfigError, GdjaxError
from gdjax.metric_writers import MetricWriter

log = logging.getLogger(__name__)


class TrainingDivergedError(GdjaxError):
  """A loss or gradient became NaN or Inf."""


class TrainingPreempted(Exception):
  """SIGTERM arrived; the state at `step` was saved to `checkpoint_dir` and the run stopped there."""

  def __init__(self, step: int, checkpoint_dir: Path):
    super().__init__(f"received SIGTERM at step {step}; saved checkpoint {checkpoint_dir}")
    self.step, self.checkpoint_dir = step, checkpoint_dir


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Returns the metrics of the last evaluation (`"<eval name>/<metric>"`).
  Raises `TrainingPreempted` after saving, if SIGTERM arrives.
  """
  workdir = Path(workdir)

  # --- Set-up and validation: nothing is written until all of it passes.
  parallelism = config.get("parallelism", "jit")
  if parallelism not in parallel.PARALLELISMS:
    raise ConfigError(
      f"Unknown parallelism {parallelism!r}. Set --config.parallelism to one of {parallel.PARALLELISMS}."
    )
  skip_nonfinite = bool(config.get("skip_nonfinite_steps", False))
  builder = data.get_builder(config.dataset)
  config.input_shape = data.input_shape(builder, config.dataset)
  if "num_classes" in config:  # A task that sizes its state by the classes gets the dataset's count.
    config.num_classes = data.num_classes(builder)
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh()
  parallel.check_global_batch_size(task.examples_per_step)
  generated_data.check_training_plan(
    builder, config.dataset, global_batch_size=task.examples_per_step, total_steps=config.total_steps
  )
  scheduled_evaluators = evaluators.build_evaluators(task, config, evaluators.EvalContext(mesh, builder, workdir))
  _check_best_metric(task, config)
  checkpoint.check_workdir_config(workdir, config)

  with contextlib.ExitStack() as cleanup:
    cleanup.enter_context(checkpoint.lock_workdir(workdir))  # Refuses a workdir that a live run holds.
    checkpoint.write_workdir_config(workdir, config)

    # --- State: restored from the newest readable checkpoint, or initialised.
    batch_sharding = parallel.batch_sharding(mesh)
    _, step_rng = run_state.root_keys(config.seed)
    manager = checkpoint.open_manager(
      workdir,
      keep_last=config.checkpoint.keep_last,
      keep_best=config.checkpoint.keep_best,
      best_metric=task.best_metric,
      best_mode=task.best_mode,
    )
    cleanup.callback(manager.close)
    run = run_state.create_or_restore(
      task, mesh, image_shape=tuple(config.input_shape), seed=config.seed, manager=manager
    )
    state, state_shapes = run.state, run.shapes
    start_step = run.step
    if start_step:
      log.info("Resumed from step %d in %s", start_step, workdir)

    # --- Compiled steps: data-parallel over the mesh (jit or pmap), state buffers donated.
    train_step = parallel.compile_train_step(
      task, state_shapes, mesh, parallelism=parallelism, skip_nonfinite=skip_nonfinite
    )

    # --- Input: per-process batches, resumed at the checkpoint's step.
    train_batches = parallel.prefetch_to_mesh(
      generated_data.train_batches(
        builder,
        config.dataset,
        global_batch_size=task.examples_per_step,
        seed=config.seed,
        start_step=start_step,
      ),
      batch_sharding,
      device_axis=parallelism == "pmap",
    )

    # --- Loop.
    writer = MetricWriter(workdir)
    cleanup.callback(writer.close)
    cleanup.callback(manager.wait_until_finished)  # Runs first: a pending save completes before anything closes.
    preemption = cleanup.enter_context(_PreemptionNotice())
    total_steps = config.total_steps
    pending_metrics = []  # Device arrays, one dict per step; fetched only on log steps, so no per-step host sync.
    final_metrics = {}
    last_log_time, last_log_step = time.perf_counter(), start_step
    progress = tqdm(
      total=total_steps,
      initial=start_step,
      unit="step",
      dynamic_ncols=True,
      disable=jax.process_index() != 0 or not config.get("progress_bar", True),
      mininterval=1.0,
    )
    cleanup.callback(progress.close)
    for step in range(start_step + 1, total_steps + 1):
      state, metrics = train_step(state, next(train_batches), step_rng)
      pending_metrics.append(metrics)
      progress.update(1)

      preempted = preemption.reached(step)
      is_checkpoint_step = step % config.checkpoint.every_steps == 0 or step == total_steps or preempted
      is_log_step = step % config.log_every_steps == 0 or is_checkpoint_step
      is_eval_step = not preempted and any(e.is_due(step, total_steps) for e in scheduled_evaluators)
      # Every step since the last check is checked before anything is logged,
      # evaluated or saved, so a diverged state is never saved over a good one.
      if is_log_step or is_eval_step:
        per_step = jax.device_get(pending_metrics)
        if not skip_nonfinite:
          _raise_if_not_finite(per_step, first_step=step - len(per_step) + 1, manager=manager)
      if is_log_step:
        summary = _summarize(per_step, count_skipped=skip_nonfinite)
        pending_metrics = []
        now = time.perf_counter()
        summary["steps_per_sec"] = (step - last_log_step) / (now - last_log_time)
        summary["examples_per_sec"] = summary["steps_per_sec"] * task.examples_per_step
        last_log_time, last_log_step = now, step
        writer.write(step, "train", summary)
        progress.set_postfix(
          {k: f"{summary[k]:.4f}" for k in task.progress_metrics if k in summary},
          refresh=False,
        )

      eval_metrics = {}
      if is_eval_step:
        eval_metrics = evaluators.run_all(scheduled_evaluators, task, state, step, total_steps=total_steps)
      if eval_metrics:
        final_metrics = eval_metrics
        writer.write(step, "eval", eval_metrics)
        if jax.process_index() == 0:
          progress.write(f"step {step}: eval " + _format_metrics(_numeric(eval_metrics)))
      if is_checkpoint_step:
        # Orbax keeps the best checkpoint by these; steps without the best metric's evaluation carry none.
        best_known = task.best_metric in eval_metrics
        checkpoint.save(manager, state, config, step=step, metrics=_numeric(eval_metrics) if best_known else None)
      if preempted:
        manager.wait_until_finished()
        raise TrainingPreempted(step, Path(manager.directory) / str(step))
    if start_step >= total_steps:
      final_metrics = evaluators.run_all(scheduled_evaluators, task, state, start_step, total_steps=start_step)
  return final_metrics


class _PreemptionNotice:
  """Whether SIGTERM has arrived, agreed by all processes on the step to stop at.

  A single process installs its own SIGTERM handler, which only sets a flag:
  the step in flight finishes and the loop saves at its boundary. In a
  multi-process run JAX's distributed runtime already catches SIGTERM and
  agrees with the other processes on a step to stop at
  (`reached_preemption_sync_point`), so every process saves the same step.
  """

  def __init__(self):
    self.received = False
    self._previous = None

  def __enter__(self):
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc_info):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def _handle(self, signum, frame):
    if not self.received:
      log.warning("Received SIGTERM; saving a checkpoint after the current step.")
    self.received = True

  def reached(self, step: int) -> bool:
    if jax.process_count() > 1:
      try:
        return multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:  # The preemption service is switched off (jax_enable_preemption_service).
        return False
    return self.received


def _check_best_metric(task, config) -> None:
  """The best checkpoint is kept by a metric that one of the run's evaluations reports."""
  if not config.checkpoint.get("keep_best", False):
    return
  name = task.best_metric.split("/", 1)[0]
  if "/" not in task.best_metric or name not in (config.get("evals") or {}):
    raise ConfigError(
      f"config.checkpoint.best_metric is {task.best_metric!r}, but no entry of config.evals is named {name!r} "
      f"(it has {sorted(config.get('evals') or {})}). Name it '<eval name>/<metric>', or set "
      "--config.checkpoint.keep_best=False."
    )
  if task.best_mode not in ("max", "min"):
    raise ConfigError(f"config.checkpoint.best_mode must be 'max' or 'min', not {task.best_mode!r}.")


def _numeric(metrics: dict) -> dict:
  return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _format_metrics(metrics: dict) -> str:
  return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _summarize(per_step: list[dict], *, count_skipped: bool) -> dict:
  """Means of the per-step metrics; with `count_skipped`, over the finite steps only, plus their count."""
  finite = [bool(m[parallel.FINITE_METRIC]) for m in per_step]
  kept = [m for m, ok in zip(per_step, finite) if ok or not count_skipped]
  names = [k for k in per_step[0] if k != parallel.FINITE_METRIC]
  summary = {k: float(np.mean([m[k] for m in kept])) for k in names} if kept else {}
  if count_skipped:
    summary["skipped_steps"] = finite.count(False)
  return summary


def _raise_if_not_finite(per_step: list[dict], *, first_step: int, manager) -> None:
  """Names the first step whose metrics or new state held a NaN or Inf, and the metrics that did."""
  for offset, metrics in enumerate(per_step):
    if bool(metrics[parallel.FINITE_METRIC]):
      continue
    step = first_step + offset
    bad = [
      f"{name}={float(value)}"
      for name, value in metrics.items()
      if name != parallel.FINITE_METRIC and not math.isfinite(float(value))
    ]
    what = ", ".join(bad) if bad else "a NaN or Inf in the updated parameters or optimizer state"
    latest = manager.latest_step()
    kept = (
      f"The last good checkpoint, step {latest} in {manager.directory}, is kept; nothing from step {step} on was saved."
      if latest is not None
      else "No checkpoint was saved before it."
    )
    raise TrainingDivergedError(
      f"Training diverged at step {step}: {what}. {kept} Lower the learning rate, add grad_clip_norm to the "
      "optimizer config, or set --config.skip_nonfinite_steps=True to skip such steps."
    )
