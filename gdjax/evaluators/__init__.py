"""Evaluators, found by name: `config.evals.<name>.type` is a module `gdjax/evaluators/<type>.py` exposing `Evaluator`.

`config.evals` lists a run's evaluations, several per run, as big_vision
does: each entry has its `type`, its cadence `every_steps` (every entry also
runs at the last step; a negative value means never during training, only
in `gdjax eval`, for evaluations too costly to repeat), an optional
`use_ema` (which weights a task with an EMA hands it) and the evaluator's
own options (`split`, `num_samples`, ...).
Its metrics are reported as `"<name>/<metric>"`. A new evaluator is one
module here plus one entry in a config.

An evaluator calls the task's named inference functions, never the task:
`Evaluator.requires` names the ones it needs, and an entry whose evaluator
needs a function the task does not offer is refused before training starts.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

import ml_collections

from gdjax.errors import ConfigError
from gdjax.evaluators.base import EvalContext, Evaluator, compile_inference
from gdjax.tasks.base import Task

__all__ = ["EvalContext", "Evaluator", "ScheduledEvaluator", "available_evaluators", "build_evaluators", "run_all"]

_NOT_EVALUATORS = {"base", "feature_network", "gan_metrics"}
# Entry fields the runner reads; the rest go to the evaluator.
_RUNNER_FIELDS = ("type", "every_steps", "use_ema")


def available_evaluators() -> list[str]:
  """Names of the evaluator modules in this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_EVALUATORS)


@dataclasses.dataclass
class ScheduledEvaluator:
  name: str
  evaluator: Evaluator
  every_steps: int
  use_ema: bool | None  # None: the entry did not say, and the task's default weights are used.

  def is_due(self, step: int, total_steps: int) -> bool:
    """Whether it runs after training step `step`; `gdjax eval` runs every entry."""
    if self.every_steps < 0:
      return False
    return step == total_steps or (self.every_steps > 0 and step % self.every_steps == 0)


def build_evaluators(
  task: Task,
  config: ml_collections.ConfigDict,
  context: EvalContext,
  *,
  split: str | None = None,
  only: list[str] | None = None,
) -> list[ScheduledEvaluator]:
  """The evaluators of `config.evals` (or the `only` ones), each bound to the task's inference functions.

  `split` replaces the `split` option of every entry that has one: `gdjax
  eval --split test` evaluates the same things on the test split.
  """
  entries = config.get("evals") or ml_collections.ConfigDict()
  names = list(entries) if only is None else only
  unknown = [name for name in names if name not in entries]
  if unknown:
    raise ConfigError(f"Unknown evaluation(s) {unknown}; this run's config.evals has {sorted(entries)}.")
  compiled = {}
  scheduled = []
  for name in names:
    entry = entries[name].to_dict()
    module = _evaluator_module(name, entry.get("type"))
    cls = module.Evaluator
    missing = [fn for fn in cls.requires if fn not in task.inference_functions]
    if missing:
      raise ConfigError(
        f"config.evals.{name} ({entry['type']}) needs the inference function(s) {missing}, which task "
        f"{config.task!r} does not offer (it offers {sorted(task.inference_functions)}). Remove the entry."
      )
    for fn in cls.requires:
      if fn not in compiled:
        compiled[fn] = compile_inference(task.inference_functions[fn], context.mesh)
    options = {k: v for k, v in entry.items() if k not in _RUNNER_FIELDS}
    if split is not None and "split" in options:
      options["split"] = split
    scheduled.append(
      ScheduledEvaluator(
        name=name,
        evaluator=_construct(cls, name, entry["type"], {fn: compiled[fn] for fn in cls.requires}, context, options),
        every_steps=int(entry.get("every_steps") or 0),
        use_ema=entry.get("use_ema"),
      )
    )
  return scheduled


def run_all(
  scheduled: list[ScheduledEvaluator], task: Task, state: Any, step: int | None, *, total_steps: int | None = None
) -> dict:
  """Runs the evaluators due at `step` (all of them when `total_steps` is None); metrics as `"<name>/<metric>"`."""
  metrics = {}
  for item in scheduled:
    if total_steps is not None and not item.is_due(step, total_steps):
      continue
    params = task.inference_params(state, use_ema=True if item.use_ema is None else item.use_ema)
    results = item.evaluator.run(params, step)
    if item.use_ema is not None and results:
      results["weights"] = "ema" if item.use_ema else "raw"
    metrics.update({f"{item.name}/{metric}": value for metric, value in results.items()})
  return metrics


def _evaluator_module(name: str, evaluator_type: str | None):
  if evaluator_type not in available_evaluators():
    raise ConfigError(
      f"config.evals.{name}.type is {evaluator_type!r}, which is no evaluator; choose one of {available_evaluators()} "
      "(modules in gdjax/evaluators/)."
    )
  return importlib.import_module(f"gdjax.evaluators.{evaluator_type}")


def _construct(cls, name, evaluator_type, inference, context, options):
  accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "inference", "context")]
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    raise ConfigError(
      f"config.evals.{name} has option(s) {unknown} that the {evaluator_type} evaluator does not take; "
      f"it takes {sorted(accepted)}."
    )
  return cls(inference, context, **options)
