"""Using a trained workdir: restore its state, evaluate a split, classify arrays.

`gdjax eval` and `gdjax predict` are thin wrappers around these functions.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gdjax import checkpoint, data, evaluators, parallel, samples, tasks
from gdjax.errors import ConfigError, InputArrayError


class TrainedModel:
  """A task and its restored state, placed on the data mesh."""

  def __init__(self, workdir: str | Path, *, which: str = "latest"):
    self.workdir = Path(workdir)
    self.config = checkpoint.read_workdir_config(self.workdir)
    self.task = tasks.build_task(self.config)
    self.mesh = parallel.make_data_mesh()
    self.replicated = parallel.replicated_sharding(self.mesh)
    self.batch_sharding = parallel.batch_sharding(self.mesh)
    self.image_shape = tuple(self.config.input_shape)
    shapes = jax.eval_shape(functools.partial(self.task.init_state, image_shape=self.image_shape), jax.random.key(0))
    manager = checkpoint.open_manager(self.workdir, read_only=True)
    if which not in ("latest", "best"):
      raise ConfigError(f"--checkpoint must be 'latest' or 'best', not {which!r}.")
    step = manager.latest_step()
    if which == "best":
      step = checkpoint.best_step(manager, self.task.best_metric, self.task.best_mode) or step
    self.state = checkpoint.restore(manager, checkpoint.abstract_with_sharding(shapes, self.replicated), step=step)
    self.step = int(self.state.step)
    manager.close()

  def evaluate(self, split: str | None = None) -> dict:
    """The task's evaluation on `split` (classifiers: accuracy; GANs: FID and co.)."""
    builder = data.get_builder(self.config.dataset)
    evaluator = evaluators.build_evaluator(self.task, self.config, builder, self.mesh, split=split)
    return evaluator.run(self.state)

  def sample(self, num: int, *, labels=None, seed: int = 0, use_ema: bool = True, batch_size: int = 500) -> np.ndarray:
    """`num` generated images as uint8 `[num, h, w, c]` (GAN workdirs only)."""
    if not hasattr(self.task, "sample_step"):
      raise ConfigError(f"{self.workdir} holds a classifier; `gdjax sample` needs a GAN workdir.")
    num_classes = self.task.num_classes
    if labels is not None:
      labels = np.asarray(labels, np.int32)
      if not num_classes:
        raise ConfigError("--labels only applies to conditional GANs; this generator is unconditional.")
      if labels.min() < 0 or labels.max() >= num_classes:
        raise ConfigError(f"--labels must lie in [0, {num_classes - 1}].")
      labels = np.resize(labels, num)  # Repeated cyclically up to `num`.
    elif num_classes:
      labels = np.arange(num) % num_classes
    sample_step = jax.jit(self.task.sample_step, static_argnames="use_ema", out_shardings=self.replicated)
    rng = jax.random.key(seed)
    chunks = []
    for index, start in enumerate(range(0, num, batch_size)):
      noise, default_labels = self.task.sample_noise(jax.random.fold_in(rng, index), batch_size)
      chunk_labels = default_labels
      if labels is not None:
        chunk_labels = jnp.asarray(np.resize(labels[start : start + batch_size], batch_size))
      images = sample_step(self.state, noise, chunk_labels, use_ema=use_ema)
      chunks.append(samples.to_uint8(jax.device_get(images))[: num - start])
    return np.concatenate(chunks)

  def predict(self, images: np.ndarray, *, batch_size: int = 1000) -> dict:
    """Labels and class probabilities of uint8 images, in order."""
    images = check_images(images, self.image_shape)
    batch_size = _round_up(batch_size, jax.device_count())
    predict_step = jax.jit(self.task.predict_step, out_shardings=self.replicated)
    outputs = []
    for start in range(0, len(images), batch_size):
      chunk = images[start : start + batch_size]
      padded = data.pad_batch({"image": chunk}, batch_size)
      result = predict_step(self.state, jax.device_put(padded["image"], self.batch_sharding))
      outputs.append({k: np.asarray(v)[: len(chunk)] for k, v in result.items()})
    return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}


def check_images(images, image_shape: tuple[int, ...]) -> np.ndarray:
  """Validates an image array for prediction and returns it as `[N, h, w, c]` uint8."""
  images = np.asarray(images)
  height, width, channels = image_shape
  accepted = f"(N, {height}, {width})" + (f" or (N, {height}, {width}, {channels})" if channels == 1 else "")
  if images.dtype != np.uint8:
    hint = ""
    if np.issubdtype(images.dtype, np.floating):
      hint = (
        " If your pixels are floats in [0, 1], convert them with "
        "`(x * 255).round().astype(np.uint8)`; if in [0, 255], with "
        "`x.round().astype(np.uint8)`."
      )
    elif np.issubdtype(images.dtype, np.integer) and images.size:
      if images.min() >= 0 and images.max() <= 255:
        hint = " Its values lie in [0, 255], so `x.astype(np.uint8)` converts it losslessly."
    raise InputArrayError(f"Images must be uint8 pixels in [0, 255]; got dtype {images.dtype}.{hint}")
  if images.ndim == 3 and channels == 1:
    images = images[..., None]
  if images.ndim != 4 or images.shape[1:] != (height, width, channels):
    raise InputArrayError(
      f"Images must have shape {accepted}; got {images.shape}. "
      + ("A single image needs a leading batch axis: `x[None]`." if images.ndim == 2 else "")
    )
  if len(images) == 0:
    raise InputArrayError("The image array is empty (N = 0); there is nothing to classify.")
  return images


def load_npy(path: str | Path) -> np.ndarray:
  path = Path(path)
  if not path.is_file():
    raise InputArrayError(f"{path} does not exist. Pass a .npy file written with np.save.")
  try:
    return np.load(path, allow_pickle=False)
  except ValueError as e:
    raise InputArrayError(
      f"{path} is not a plain NumPy array file ({e}). Save a uint8 array with `np.save(path, images)`."
    ) from e


def write_json(path: str | Path, payload: dict) -> None:
  if jax.process_index() == 0:
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple
