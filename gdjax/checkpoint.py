"""Orbax checkpoints of the one state pytree, plus the config that made it.

Layout of a workdir:
  config.json          the full config of the run (written once, checked on resume)
  checkpoints/<step>/  Orbax items `state` (the pytree) and `config` (JSON)

The manager keeps the last `keep_last` checkpoints and, if asked, the best one
by an eval metric as well. Saving is asynchronous: `save` returns as soon as
the arrays are copied off the device, and the loop keeps stepping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from gdjax.errors import CheckpointError

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
# The parts of a config that decide the state's structure; a checkpoint only
# fits a config that agrees with it on these.
STRUCTURAL_FIELDS = ("task", "model")


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


def restore(manager: ocp.CheckpointManager, abstract_state: Any, *, step: int | None = None) -> Any:
  """Restores the state at `step` (default: latest) onto `abstract_state`'s shardings."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(
      f"No checkpoint in {manager.directory}. Train first with "
      "`gdjax train --config configs/<name>.py --workdir <workdir>`."
    )
  try:
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
  except Exception as e:  # Orbax raises many types for a tree that does not fit.
    raise CheckpointError(
      f"The checkpoint at step {step} in {manager.directory} does not fit this "
      f"model ({type(e).__name__}: {str(e)[:300]}). Use the config that wrote "
      "it, or a fresh --workdir."
    ) from e
  return restored["state"]


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
  """The config a workdir was trained with."""
  path = Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise CheckpointError(
      f"{path} does not exist, so {workdir} is not a gdjax workdir (or its "
      "training never started). Pass the --workdir you trained in."
    )
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def check_or_write_workdir_config(workdir: str | Path, config: ml_collections.ConfigDict) -> None:
  """Writes `config.json`, or checks that an existing one describes the same model.

  A workdir whose checkpoints came from another model is refused before
  anything in it is touched, so a mistyped --workdir loses nothing.
  """
  path = Path(workdir) / CONFIG_FILE
  if path.is_file():
    saved = json.loads(path.read_text())
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
  if jax.process_index() == 0:
    Path(workdir).mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
