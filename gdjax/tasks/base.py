"""The task interface: everything the loop, the CLI, inference, evaluators and pmap know of a kind of training.

A task binds a config (model, loss, optimizer) to a state pytree and pure
functions. Nothing outside `gdjax.tasks` asks a task what type it is: the
loop calls `init_state` and `train_step`, evaluators and `gdjax
predict`/`sample` call the task's named inference functions, the pmap path
asks for `for_pmap`, and checkpoints are kept by `best_metric`.

The interface is wide enough for tasks that are not trained by gradients:
a closed-form fit (naive Bayes) is a `train_step` that adds sufficient
statistics to its state, with no optimizer at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import ml_collections

PyTree = Any
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class TensorSpec:
  """A named input or output of an inference function: dtype and shape, -1 for the batch dimension."""

  dtype: str  # A NumPy dtype name: "uint8", "int32", "float32".
  shape: tuple[int, ...]
  description: str = ""


@dataclasses.dataclass(frozen=True)
class InferenceFunction:
  """A pure, jittable `(params, inputs) -> outputs` on named arrays, for any batch size.

  `params` is what `Task.inference_params(state)` returns: only the
  variables inference needs (a classifier's weights, a GAN's EMA
  generator), so the same function serves evaluators, `gdjax
  predict`/`sample` and exported models. Every input and output has a leading
  batch dimension except the scalar inputs whose spec has shape `()`
  (a generator's `seed`). Row i of the outputs depends only on row i of the
  batched inputs: the same image gets the same label, and the same (seed,
  sample id) the same sample, in a batch of any size.
  """

  fn: Callable[[PyTree, Mapping[str, jax.Array]], dict[str, jax.Array]]
  inputs: Mapping[str, TensorSpec]
  outputs: Mapping[str, TensorSpec]

  def __call__(self, params: PyTree, inputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    return self.fn(params, inputs)

  @property
  def batched_inputs(self) -> tuple[str, ...]:
    """The inputs with a batch dimension (everything but scalars)."""
    return tuple(name for name, spec in self.inputs.items() if spec.shape)


class Task(Protocol):
  """What every kind of training provides. Implementations live in `gdjax/tasks/<name>.py` as `Task`.

  Attributes:
    config: the run's config.
    examples_per_step: training examples one `train_step` consumes (the
      global batch the input pipeline assembles).
    progress_metrics: train metrics the progress bar shows.
    best_metric: the evaluation metric (`"<eval name>/<metric>"`, as in
      `config.evals`) by which the best checkpoint is kept.
    best_mode: "max" or "min" for `best_metric`.
    inference_functions: the task's named inference functions, e.g.
      `{"predict": ...}` for a classifier and `{"sample": ...}` for a
      generator; a task may offer several. The evaluators a task offers are
      exactly those whose `requires` names are all here (see
      `gdjax.evaluators`).
  """

  config: ml_collections.ConfigDict
  examples_per_step: int
  progress_metrics: tuple[str, ...]
  best_metric: str
  best_mode: str
  inference_functions: Mapping[str, InferenceFunction]

  def init_state(self, rng: jax.Array, image_shape: tuple[int, ...]) -> PyTree:
    """The initial state pytree (parameters, optimizer and any other state), as arrays."""
    ...

  def train_step(self, state: PyTree, batch: dict[str, jax.Array], rng: jax.Array) -> tuple[PyTree, Metrics]:
    """One pure update. `rng` is the run's root key; the step's own key is `fold_in(rng, state.step)`."""
    ...

  def inference_params(self, state: PyTree, *, use_ema: bool = True) -> PyTree:
    """The variables the inference functions take; `use_ema=False` asks for raw weights where a task keeps an EMA."""
    ...

  def for_pmap(self, axis_name: str, num_devices: int) -> Task:
    """A copy whose `train_step`, run per device under `jax.pmap`, averages its updates over `axis_name`.

    Its state has the same structure as this task's, so checkpoints move
    freely between `jit` and `pmap`.
    """
    ...
