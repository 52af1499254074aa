"""What every evaluator gets, and the batching every evaluator shares.

An evaluator module `gdjax/evaluators/<type>.py` exposes `Evaluator`, a
subclass of `Evaluator` below. It is built with the task's named inference
functions (already compiled), an `EvalContext` and its own options from the
config entry, and `run(params, step)` returns a dict of metrics. It never
sees the task: what it needs is named in `requires`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import jax
import numpy as np
import tensorflow_datasets as tfds
from jax.sharding import Mesh

from gdjax import data, parallel
from gdjax.tasks.base import InferenceFunction


@dataclasses.dataclass(frozen=True)
class EvalContext:
  """The run an evaluator belongs to: devices, dataset, and where files go."""

  mesh: Mesh
  builder: tfds.core.DatasetBuilder
  workdir: Path | None  # None: write no files (`gdjax eval` without --pictures).
  # Appended to picture file names: `gdjax eval --pictures` names the split it drew from, so that
  # training's pictures (of the validation split) are not overwritten.
  picture_suffix: str = ""

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.builder.info.features["label"].names)


class Evaluator:
  """Base of every evaluator: `requires` names the inference functions it calls."""

  requires: ClassVar[tuple[str, ...]] = ()

  def __init__(self, inference: Mapping[str, InferenceFunction], context: EvalContext):
    self.inference = inference
    self.context = context

  def run(self, params: Any, step: int | None = None) -> dict:
    raise NotImplementedError


def compile_inference(function: InferenceFunction, mesh: Mesh) -> InferenceFunction:
  """The same inference function, jitted with replicated outputs (every process can read all of them)."""
  return dataclasses.replace(function, fn=jax.jit(function.fn, out_shardings=parallel.replicated_sharding(mesh)))


def call_in_batches(
  function: InferenceFunction,
  params: Any,
  batched: Mapping[str, np.ndarray],
  *,
  batch_size: int,
  mesh: Mesh,
  scalars: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
  """Runs `function` over whole arrays in batches of one shape, split over the mesh; returns NumPy outputs.

  `batched` holds the same global arrays on every process (e.g. sample ids);
  each batch is padded to `batch_size` (rounded up to a multiple of the
  device count), so there is one compilation however many rows there are.
  """
  total = len(next(iter(batched.values())))
  batch_size = -(-batch_size // jax.device_count()) * jax.device_count()
  sharding = parallel.batch_sharding(mesh)
  local = slice(
    jax.process_index() * batch_size // jax.process_count(),
    (jax.process_index() + 1) * batch_size // jax.process_count(),
  )
  outputs = []
  for start in range(0, total, batch_size):
    chunk = {name: np.asarray(array[start : start + batch_size]) for name, array in batched.items()}
    padded = data.pad_batch(chunk, batch_size)
    padded.pop("mask")
    inputs = {name: jax.make_array_from_process_local_data(sharding, array[local]) for name, array in padded.items()}
    result = jax.device_get(function(params, {**inputs, **(scalars or {})}))
    outputs.append({name: np.asarray(value)[: len(next(iter(chunk.values())))] for name, value in result.items()})
  return {name: np.concatenate([output[name] for output in outputs]) for name in outputs[0]}


def draw_samples(
  sample: InferenceFunction, params: Any, context: EvalContext, *, num_samples: int, seed: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray | None]:
  """`num_samples` uint8 images for sample ids 0..num_samples-1, and their labels if the generator is conditional.

  A conditional generator gets the classes in turn (id % number of
  classes), so every class gets the same share; `gdjax sample` with the same
  seed and no --labels draws the same images.
  """
  sample_ids = np.arange(num_samples, dtype=np.int32)
  batched = {"sample_ids": sample_ids}
  labels = None
  if "labels" in sample.inputs:
    labels = sample_ids % len(context.class_names)
    batched["labels"] = labels.astype(np.int32)
  images = call_in_batches(
    sample, params, batched, batch_size=batch_size, mesh=context.mesh, scalars={"seed": np.int32(seed)}
  )["images"]
  return images, labels


class SampleEvaluator(Evaluator):
  """Base of the evaluators that score a generator's samples: ids 0..num_samples-1 under `sample_seed`."""

  requires = ("sample",)

  def __init__(self, inference, context: EvalContext, *, num_samples: int, sample_seed: int, batch_size: int):
    super().__init__(inference, context)
    self.num_samples, self.sample_seed, self.batch_size = num_samples, sample_seed, batch_size

  def draw(self, params: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """This evaluator's samples (uint8) and, for a conditional generator, their labels."""
    return draw_samples(
      self.inference["sample"],
      params,
      self.context,
      num_samples=self.num_samples,
      seed=self.sample_seed,
      batch_size=self.batch_size,
    )
