"""Optax optimizers and learning-rate schedules built from a config.

`config.optimizer.name` is any optax optimizer taking `learning_rate` (adam,
adamw, sgd, lamb, ...); the remaining fields of `config.optimizer` are passed
to it as keyword arguments. `config.schedule` shapes the learning rate.
Coupled L2 weight decay (`optax.add_decayed_weights` on kernels) and, under
pmap, the gradient average over devices are added here too, so task code
never handles either.
"""

from __future__ import annotations

import inspect

import jax
import ml_collections
import optax

from gdjax.errors import ConfigError

SCHEDULES = ("constant", "cosine", "warmup_cosine")


def build_schedule(schedule_config: ml_collections.ConfigDict, learning_rate: float, total_steps: int):
  """A learning-rate schedule, `step -> learning rate`."""
  name = schedule_config.get("name", "constant")
  warmup_steps = schedule_config.get("warmup_steps", 0)
  end_fraction = schedule_config.get("end_fraction", 0.0)
  if name == "constant":
    return optax.constant_schedule(learning_rate)
  if name in ("cosine", "warmup_cosine"):
    return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup_steps else learning_rate,
      peak_value=learning_rate,
      warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1),
      end_value=learning_rate * end_fraction,
    )
  raise ConfigError(f"Unknown schedule {name!r}. Set --config.schedule.name to one of {SCHEDULES}.")


def build_optimizer(
  optimizer_config: ml_collections.ConfigDict,
  schedule_config: ml_collections.ConfigDict,
  total_steps: int,
  *,
  weight_decay: float = 0.0,
  gradient_axis: str | None = None,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns `(optimizer, schedule)`; the schedule is also used for logging.

  Args:
    optimizer_config: `name`, `learning_rate`, optional `grad_clip_norm`, and
      the optax optimizer's other keyword arguments.
    schedule_config: the learning-rate schedule (see `build_schedule`).
    total_steps: the run's length, for decaying schedules.
    weight_decay: adds `weight_decay * w` to the gradient of every kernel
      (not biases or scales) before clipping and the optimizer: the gradient
      of an L2 penalty `weight_decay * |w|^2 / 2`.
    gradient_axis: under `jax.pmap`, the axis over which gradients are
      averaged before anything else sees them. The optimizer state keeps
      the structure it has without it.
  """
  kwargs = dict(optimizer_config.to_dict())
  name = kwargs.pop("name")
  learning_rate = kwargs.pop("learning_rate")
  clip_norm = kwargs.pop("grad_clip_norm", None)
  factory = getattr(optax, name, None)
  if factory is None or not callable(factory) or "learning_rate" not in inspect.signature(factory).parameters:
    raise ConfigError(
      f"Unknown optimizer {name!r}. Set --config.optimizer.name to an optax "
      "optimizer that takes a learning rate, e.g. 'adam', 'adamw' or 'sgd'."
    )
  accepted = inspect.signature(factory).parameters
  unknown = sorted(k for k in kwargs if k not in accepted)
  if unknown:
    raise ConfigError(
      f"optax.{name} takes no argument(s) {unknown}; remove them from "
      f"config.optimizer. It takes {sorted(p for p in accepted if p != 'learning_rate')}."
    )
  schedule = build_schedule(schedule_config, learning_rate, total_steps)
  optimizer = factory(learning_rate=schedule, **kwargs)
  if clip_norm:
    optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
  if weight_decay:
    optimizer = optax.chain(optax.add_decayed_weights(weight_decay, mask=kernels_only), optimizer)
  if gradient_axis is not None:
    optimizer = pmean_gradients(optimizer, gradient_axis)
  return optimizer, schedule


def kernels_only(params):
  """True for weights that L2 penalties apply to: everything but biases and normalisation scales."""
  return jax.tree_util.tree_map_with_path(lambda path, _: _leaf_name(path) not in ("bias", "scale"), params)


def _leaf_name(path) -> str:
  return str(getattr(path[-1], "key", getattr(path[-1], "name", path[-1])))


def pmean_gradients(optimizer: optax.GradientTransformation, axis_name: str) -> optax.GradientTransformation:
  """`optimizer`, fed the mean of the gradients over `axis_name`; its state is `optimizer`'s own."""

  def update(updates, state, params=None, **extra_args):
    return optimizer.update(jax.lax.pmean(updates, axis_name), state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(optimizer.init, update)
