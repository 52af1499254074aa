"""Creates or restores a run's state on a device mesh: the one place that does it.

Training, `gdjax eval`/`predict`/`sample`, the tests and the benchmarks all
get their state here: the task's state shapes (without computing anything),
their shardings on the mesh, then either an Orbax restore (with the fallback
past unreadable checkpoints when resuming) or a jitted initialisation from
the seed.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import jax
import ml_collections
from jax.sharding import Mesh

from gdjax import checkpoint, parallel, tasks
from gdjax.errors import CheckpointError, ConfigError
from gdjax.tasks.base import Task


@dataclasses.dataclass
class RunState:
  """A task's state on a mesh, with what it takes to compile steps for it."""

  task: Task
  mesh: Mesh
  state: Any
  shapes: Any  # `jax.ShapeDtypeStruct`s of the state.
  shardings: Any  # The state's shardings on `mesh`.

  @property
  def step(self) -> int:
    return int(jax.device_get(self.state.step))


def root_keys(seed: int) -> tuple[jax.Array, jax.Array]:
  """`(init key, step key)` of a run: parameters are initialised from the first, every step folds its number into the second."""
  init_rng, step_rng = jax.random.split(jax.random.key(seed))
  return init_rng, step_rng


def create_or_restore(
  task: Task,
  mesh: Mesh,
  *,
  image_shape: tuple[int, ...],
  seed: int,
  manager=None,
  step: int | None = None,
  fall_back: bool = True,
) -> RunState:
  """The state at `step` of `manager`'s checkpoints (default: the newest), or a fresh one from `seed`.

  With `fall_back` and no `step`, a checkpoint that fails to restore is
  reported and skipped for the previous one (see
  `checkpoint.restore_latest`). Without a manager, or with one that holds no
  checkpoint, the state is initialised on the mesh from `seed`.
  """
  init_rng, _ = root_keys(seed)
  init_state = functools.partial(task.init_state, image_shape=tuple(image_shape))
  shapes = jax.eval_shape(init_state, init_rng)
  shardings = parallel.state_shardings(shapes, mesh)
  has_checkpoints = manager is not None and manager.latest_step() is not None
  if step is not None or has_checkpoints:
    if manager is None:
      raise ValueError("Restoring a given step needs a checkpoint manager.")
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings)
    if step is None and fall_back:
      state = checkpoint.restore_latest(manager, abstract)
    else:
      state = checkpoint.restore(manager, abstract, step=step)
  else:
    state = jax.jit(init_state, out_shardings=shardings)(init_rng)
  return RunState(task=task, mesh=mesh, state=state, shapes=shapes, shardings=shardings)


def restore_workdir(
  workdir: str | Path, *, which: str | int = "latest", mesh: Mesh | None = None
) -> tuple[ml_collections.ConfigDict, RunState]:
  """The config and restored state of a trained workdir: its latest checkpoint, its best, or a given step."""
  config = checkpoint.read_workdir_config(workdir)
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh() if mesh is None else mesh
  manager = checkpoint.open_manager(workdir, read_only=True)
  try:
    if which == "latest":
      step = manager.latest_step()
    elif which == "best":
      step = checkpoint.best_step(manager, task.best_metric, task.best_mode) or manager.latest_step()
    elif isinstance(which, int):
      step = which
    else:
      raise ConfigError(f"--checkpoint must be 'latest' or 'best', not {which!r}.")
    if step is None:
      raise CheckpointError(
        f"No checkpoint in {manager.directory}. Train first with "
        "`gdjax train --config configs/<name>.py --workdir <workdir>`."
      )
    run = create_or_restore(
      task, mesh, image_shape=tuple(config.input_shape), seed=config.seed, manager=manager, step=step
    )
  finally:
    manager.close()
  return config, run
