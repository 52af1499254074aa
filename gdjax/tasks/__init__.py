"""Kinds of training, found by `config.task`.

A task turns a config into a state pytree and pure step functions:
`init_state(rng, image_shape)`, `train_step(state, batch, rng)`,
`examples_per_step`, `progress_metrics`, and `best_metric` / `best_mode` for
keeping the best checkpoint; `gdjax.evaluators.build_evaluator` picks how
the task is evaluated. The loop knows tasks only through
this interface, so a new kind of training is one new module here.
"""

from __future__ import annotations

import ml_collections

from gdjax.errors import ConfigError
from gdjax.tasks.classifier import ClassifierState, ClassifierTask
from gdjax.tasks.gan import GANState, GANTask

TASKS = {"classifier": ClassifierTask, "gan": GANTask}

__all__ = ["TASKS", "ClassifierState", "ClassifierTask", "GANState", "GANTask", "build_task"]


def build_task(config: ml_collections.ConfigDict):
  name = config.get("task")
  if name not in TASKS:
    raise ConfigError(f"Unknown task {name!r}. Set --config.task to one of {sorted(TASKS)}.")
  return TASKS[name](config)
