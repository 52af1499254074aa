"""Orbax checkpoints of the one state pytree, plus the config that made it.

Layout of a workdir:
  config.json          the full config of the run (written once, checked on resume)
  checkpoints/<step>/  Orbax items `state` (the pytree) and `config` (JSON)
  gdjax.lock           held (flock) by the `gdjax train` using the workdir; says which process
  checkpoints_unreadable/<step>/  checkpoints that failed to restore, moved aside

The manager keeps the last `keep_last` checkpoints and, if asked, the best one
by an eval metric as well. Saving is asynchronous: `save` returns as soon as
the arrays are copied off the device, and the loop keeps stepping. Resuming
falls back to the newest checkpoint that restores, so a save cut short by a
crash or a damaged file costs the steps since the previous one and no more.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import inspect
import json
import logging
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy

from gdjax.errors import CheckpointError

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
UNREADABLE_DIR = "checkpoints_unreadable"
LOCK_FILE = "gdjax.lock"


class WorkdirInUseError(CheckpointError):
  """Another live `gdjax train` holds the workdir's lock."""


# The parts of a config that decide the state's structure; a checkpoint only
# fits a config that agrees with it on these.
STRUCTURAL_FIELDS = ("task", "model")

# The layout of `config.json` and of the state pytree. Workdirs without the
# key were written by gdjax 0.1.0 (format 1: a GAN state without regulariser
# state, one evaluator per task chosen by its type); this gdjax writes and
# reads format 2 and refuses the others rather than misread them.
WORKDIR_FORMAT_KEY = "gdjax_workdir_format"
WORKDIR_FORMAT = 2


def open_manager(
  workdir: str | Path,
  *,
  keep_last: int = 3,
  keep_best: bool = False,
  best_metric: str = "accuracy",
  best_mode: str = "max",
  read_only: bool = False,
) -> ocp.CheckpointManager:
  policies = [preservation_policy.LatestN(n=keep_last)]
  if keep_best:
    policies.append(
      preservation_policy.BestN(
        get_metric_fn=lambda metrics: metrics[best_metric],
        reverse=best_mode == "min",
        n=1,
        keep_checkpoints_without_metrics=False,
      )
    )
  options = ocp.CheckpointManagerOptions(
    preservation_policy=preservation_policy.AnyPreservationPolicy(policies),
    # With `best_fn` set, Orbax writes each checkpoint's metrics to disk, so a
    # resumed run still knows which kept checkpoint is the best.
    best_fn=(lambda metrics: metrics[best_metric]) if keep_best else None,
    best_mode=best_mode,
    enable_async_checkpointing=True,
    read_only=read_only,
    create=not read_only,
  )
  return ocp.CheckpointManager(
    Path(workdir).absolute() / CHECKPOINT_DIR, options=options, item_names=("state", "config")
  )


def save(
  manager: ocp.CheckpointManager,
  state: Any,
  config: ml_collections.ConfigDict,
  *,
  step: int,
  metrics: dict | None = None,
) -> bool:
  """Starts an asynchronous save of `state` at `step`; skips steps already saved."""
  if step in manager.all_steps():
    return False
  return manager.save(
    step,
    args=ocp.args.Composite(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config.to_dict())),
    metrics=metrics,
    force=True,
  )


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any) -> Any:
  """Restores the newest checkpoint that restores, falling back past unreadable ones.

  A checkpoint that fails (a truncated or corrupt file) gets a warning naming
  its step and the error. Once an older one restores, the failed ones are
  moved to `checkpoints_unreadable/` beside `checkpoints/`, so the run can
  save those steps again and nothing is deleted. If none restores, nothing
  is moved and the newest one's error is raised: a config that does not fit
  the checkpoints must not cost the user their checkpoints.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    return restore(manager, abstract_state)  # Raises "Train first".
  failed, newest_error = [], None
  for step in steps:
    try:
      state = restore(manager, abstract_state, step=step)
    except CheckpointError as e:
      failed.append(step)
      newest_error = newest_error or e
      if step != steps[-1]:
        log.warning(
          "The checkpoint at step %d in %s could not be restored (%s); falling back to an earlier one.",
          step,
          manager.directory,
          _one_line(e.__cause__),
        )
      continue
    if failed:
      _move_aside(manager, failed)
      log.warning(
        "Resumed from step %d instead of step %d; the unreadable checkpoint(s) were moved to %s.",
        step,
        failed[0],
        Path(manager.directory).parent / UNREADABLE_DIR,
      )
    return state
  if len(failed) == 1:
    raise newest_error
  raise CheckpointError(
    f"None of the checkpoints in {manager.directory} (steps {', '.join(map(str, failed))}) could be restored; "
    f"the newest failed with {_one_line(newest_error.__cause__)}. Use the config that wrote them, or a fresh "
    "--workdir. Nothing was changed."
  ) from newest_error.__cause__


def _one_line(error: BaseException | None, limit: int = 300) -> str:
  text = " ".join(f"{type(error).__name__}: {error}".split())
  return text if len(text) <= limit else text[: limit - 3] + "..."


def _move_aside(manager: ocp.CheckpointManager, steps: list[int]) -> None:
  """Moves checkpoint directories out of the manager's sight (process 0; the others wait)."""
  if jax.process_index() == 0:
    directory = Path(manager.directory)
    target = directory.parent / UNREADABLE_DIR
    target.mkdir(exist_ok=True)
    for step in steps:
      destination = target / str(step)
      if destination.exists():
        destination = target / f"{step}.{int(time.time())}"
      os.replace(directory / str(step), destination)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("gdjax: unreadable checkpoints moved aside")
  manager.reload()


def restore(manager: ocp.CheckpointManager, abstract_state: Any, *, step: int | None = None) -> Any:
  """Restores the state at `step` (default: latest) onto `abstract_state`'s shardings."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(
      f"No checkpoint in {manager.directory}. Train first with "
      "`gdjax train --config configs/<name>.py --workdir <workdir>`."
    )
  _hide_abandoned_read_reports()  # Before the read: a failed one's leftovers can report at any time.
  try:
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
  except Exception as e:  # Orbax raises many types for a tree that does not fit.
    raise CheckpointError(
      f"The checkpoint at step {step} in {manager.directory} does not fit this "
      f"model ({_one_line(e)}). Use the config that wrote "
      "it, or a fresh --workdir."
    ) from e
  return restored["state"]


def _hide_abandoned_read_reports() -> None:
  """Keeps Python from reporting the reads a failed Orbax restore abandons.

  When one array of a checkpoint fails to read, Orbax raises at once and
  leaves the other arrays' reads unfinished. They end later, in one of two
  ways that Python can only print as "Exception ignored in: ...", possibly
  long after gdjax has said in one line what went wrong and fallen back:
  - Python frees an unfinished read coroutine and closes it, and Orbax's
    error handler turns that close (GeneratorExit) into an exception with a
    page of TensorStore spec;
  - a read that TensorStore finishes afterwards calls back into Orbax's event
    loop, which is closed by then ("Event loop is closed", from asyncio).
  This hook, installed once before the first restore, drops exactly those two
  reports. Every other
  report goes to the hook that was there before.
  """
  if getattr(sys.unraisablehook, "drops_abandoned_orbax_reads", False):
    return
  previous_hook = sys.unraisablehook

  def is_abandoned_read(unraisable) -> bool:
    obj, error = unraisable.object, unraisable.exc_value
    if inspect.iscoroutine(obj):
      return "orbax" in obj.cr_code.co_filename and isinstance(error.__cause__, GeneratorExit)
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed" and unraisable.exc_traceback:
      return "asyncio" in traceback.extract_tb(unraisable.exc_traceback)[-1].filename
    return False

  def hook(unraisable):
    if not is_abandoned_read(unraisable):
      previous_hook(unraisable)

  hook.drops_abandoned_orbax_reads = True
  sys.unraisablehook = hook


def best_step(manager: ocp.CheckpointManager, metric: str, mode: str) -> int | None:
  """The kept step with the best `metric` (None if no checkpoint has metrics)."""
  scored = []
  for step in manager.all_steps():
    metrics = manager.metrics(step)
    if metrics and metric in metrics:
      scored.append((metrics[metric], step))
  if not scored:
    return None
  return (max(scored) if mode == "max" else min(scored))[1]


def abstract_with_sharding(state_shapes: Any, sharding: jax.sharding.Sharding) -> Any:
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_shapes)


def read_workdir_config(workdir: str | Path) -> ml_collections.ConfigDict:
  """The config a workdir was trained with; refuses a workdir of another format."""
  path = Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise CheckpointError(
      f"{path} does not exist, so {workdir} is not a gdjax workdir (or its "
      "training never started). Pass the --workdir you trained in."
    )
  saved = json.loads(path.read_text())
  _check_format(workdir, saved)
  saved.pop(WORKDIR_FORMAT_KEY)
  return ml_collections.ConfigDict(saved)


def _check_format(workdir, saved: dict) -> None:
  found = saved.get(WORKDIR_FORMAT_KEY, 1)
  if found != WORKDIR_FORMAT:
    raise CheckpointError(
      f"{workdir} was written by a gdjax with workdir format {found}; this gdjax reads format {WORKDIR_FORMAT} "
      f"(its state pytree and config layout differ, so its checkpoints would be misread). Train again in a new "
      f"--workdir, or use the gdjax version that wrote it ({'0.1.0' if found == 1 else 'a newer one'}) to "
      "evaluate or sample it. Nothing in the workdir was changed."
    )


def check_workdir_config(workdir: str | Path, config: ml_collections.ConfigDict) -> None:
  """Refuses a workdir whose `config.json` describes another model; reads only.

  A workdir whose checkpoints came from another model is refused before
  anything in it is touched, so a mistyped --workdir loses nothing.
  """
  path = Path(workdir) / CONFIG_FILE
  if path.is_file():
    saved = json.loads(path.read_text())
    _check_format(workdir, saved)
    current = json.loads(json.dumps(config.to_dict()))  # Tuples become lists, as in the file.
    for field in STRUCTURAL_FIELDS:
      if saved.get(field) != current.get(field):
        raise CheckpointError(
          f"{workdir} holds a run of a different model: its {CONFIG_FILE} has "
          f"{field}={json.dumps(saved.get(field), sort_keys=True)}, but this config has "
          f"{field}={json.dumps(current.get(field), sort_keys=True)}. Use a new "
          "--workdir for this config, or the config that the workdir was "
          "trained with to resume it. Nothing in the workdir was changed."
        )


def write_workdir_config(workdir: str | Path, config: ml_collections.ConfigDict) -> None:
  """Writes `config.json` (process 0), atomically: other processes may be reading it."""
  if jax.process_index() == 0:
    path = Path(workdir) / CONFIG_FILE
    Path(workdir).mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{CONFIG_FILE}.{os.getpid()}")
    payload = {**config.to_dict(), WORKDIR_FORMAT_KEY: WORKDIR_FORMAT}
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


@contextlib.contextmanager
def lock_workdir(workdir: str | Path):
  """Holds the workdir's lock file for the duration, so that two runs never train in one workdir.

  The lock is an `flock` on `gdjax.lock`, which the OS drops when the holder
  dies however it dies (SIGKILL included), so a crashed run never leaves a
  stale lock behind. The file also says which process holds it. Only
  process 0 of a multi-process run takes it. On a filesystem without locks
  the run goes ahead with a warning.
  """
  if jax.process_index() != 0:
    yield
    return
  Path(workdir).mkdir(parents=True, exist_ok=True)
  path = Path(workdir) / LOCK_FILE
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "an unknown process"
      raise WorkdirInUseError(
        f"{workdir} is in use by another `gdjax train` that is still running ({holder}). Wait for it to "
        "finish, stop it (SIGTERM saves a checkpoint and exits), or pass another --workdir."
      ) from None
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        raise
      log.warning("%s does not support file locks (%s); not guarding the workdir against a second run.", workdir, e)
    os.ftruncate(fd, 0)
    os.pwrite(
      fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0
    )
    yield
  finally:
    os.close(fd)  # Releases the lock; the file stays, so a waiting run never locks a deleted inode.
