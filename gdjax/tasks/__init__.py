"""Kinds of training, found by `config.task`: `gdjax/tasks/<name>.py` exposes `Task`.

The registry is the only place that turns a task's name into code; the rest
of gdjax knows tasks through the interface in `gdjax.tasks.base`. A new kind
of training is one new module here (plus its models and configs).
"""

from __future__ import annotations

import importlib
import pkgutil

import ml_collections

from gdjax.errors import ConfigError
from gdjax.tasks.base import InferenceFunction, Task, TensorSpec

__all__ = ["InferenceFunction", "Task", "TensorSpec", "available_tasks", "build_task"]

_NOT_TASKS = {"base"}


def available_tasks() -> list[str]:
  """Names of the task modules in this package."""
  return sorted(
    m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_TASKS and not m.name.startswith("_")
  )


def build_task(config: ml_collections.ConfigDict) -> Task:
  """The task named by `config.task`, bound to `config`."""
  name = config.get("task")
  if not isinstance(name, str) or name not in available_tasks():
    raise ConfigError(f"Unknown task {name!r}. Set --config.task to one of {available_tasks()}.")
  return importlib.import_module(f"gdjax.tasks.{name}").Task(config)
