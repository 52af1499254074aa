"""Using a trained workdir: restore its state, evaluate it, classify arrays, draw samples.

`gdjax eval`, `gdjax predict` and `gdjax sample` are thin wrappers around
these functions, which go through the task's named inference functions.
`python -m gdjax.inference export_feature_network --workdir W` writes a
trained CNN workdir as the feature network FID and its kin use.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from gdjax import data, evaluators, run_state
from gdjax.errors import CheckpointError, ConfigError, InputArrayError
from gdjax.evaluators import feature_network


def file_name_part(text: str) -> str:
  """`text` with every character but letters and digits replaced by `_`: a split as part of a file name."""
  return "".join(c if c.isalnum() else "_" for c in text)


class TrainedModel:
  """A trained workdir's task and restored state on the data mesh, used through the task's inference functions."""

  def __init__(self, workdir: str | Path, *, which: str = "latest"):
    self.workdir = Path(workdir)
    self.config, self.run = run_state.restore_workdir(self.workdir, which=which)
    self.task, self.mesh, self.state = self.run.task, self.run.mesh, self.run.state
    self.step = self.run.step
    self.image_shape = tuple(self.config.input_shape)
    self._compiled = {}

  def _function(self, name: str, command: str):
    if name not in self.task.inference_functions:
      offered = sorted(self.task.inference_functions)
      raise ConfigError(
        f"{self.workdir} holds a {self.config.task!r} run, whose inference functions are {offered}; "
        f"`gdjax {command}` needs one that offers {name!r}."
      )
    if name not in self._compiled:
      self._compiled[name] = evaluators.base.compile_inference(self.task.inference_functions[name], self.mesh)
    return self._compiled[name]

  def evaluate(self, split: str | None = None, *, only: list[str] | None = None, pictures: bool = False) -> dict:
    """The run's evaluations (`config.evals`, or the `only` ones), with `split` replacing each one's split.

    With `pictures`, evaluators that draw (sample grids, a VAE's reconstructions,
    interpolations and latent plot) write into the workdir's `samples/`, their
    file names ending in `_<split>`; otherwise nothing is written.
    """
    builder = data.get_builder(self.config.dataset)
    suffix = "_" + file_name_part(split) if split else "_evaluated"
    context = evaluators.EvalContext(
      self.mesh, builder, workdir=self.workdir if pictures else None, picture_suffix=suffix
    )
    scheduled = evaluators.build_evaluators(self.task, self.config, context, split=split, only=only)
    return evaluators.run_all(scheduled, self.task, self.state, self.step)

  def sample(self, num: int, *, labels=None, seed: int = 0, use_ema: bool = True, batch_size: int = 500) -> np.ndarray:
    """`num` generated images as uint8 `[num, h, w, c]`: sample ids 0..num-1 under `seed`.

    A conditional generator gets `labels` repeated cyclically up to `num`,
    or by default the classes in turn, as the evaluators draw them.
    """
    sample = self._function("sample", "sample")
    check_seed(seed)
    sample_ids = np.arange(num, dtype=np.int32)
    batched = {"sample_ids": sample_ids}
    if "labels" in sample.inputs:
      num_classes = len(data.get_builder(self.config.dataset).info.features["label"].names)
      if labels is None:
        labels = sample_ids % num_classes
      labels = np.asarray(labels, np.int64)
      if labels.min() < 0 or labels.max() >= num_classes:
        raise ConfigError(f"--labels must lie in [0, {num_classes - 1}].")
      batched["labels"] = np.resize(labels, num).astype(np.int32)
    elif labels is not None:
      raise ConfigError("--labels only applies to conditional generators; this one is unconditional.")
    params = self.task.inference_params(self.state, use_ema=use_ema)
    return evaluators.base.call_in_batches(
      sample, params, batched, batch_size=batch_size, mesh=self.mesh, scalars={"seed": np.int32(seed)}
    )["images"]

  def predict(self, images: np.ndarray, *, batch_size: int = 1000) -> dict:
    """Labels and class probabilities of uint8 images, in order."""
    predict = self._function("predict", "predict")
    images = check_images(images, self.image_shape)
    params = self.task.inference_params(self.state)
    return evaluators.base.call_in_batches(predict, params, {"images": images}, batch_size=batch_size, mesh=self.mesh)


def check_seed(seed: int) -> int:
  """Sample seeds are 32-bit signed integers (negative ones included)."""
  if not -(2**31) <= int(seed) < 2**31:
    raise ConfigError(f"--seed must lie in [-2**31, 2**31 - 1]; got {seed}.")
  return int(seed)


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


def export_feature_network(
  workdir: str | Path, name: str = feature_network.DEFAULT_NAME, directory=feature_network.ASSETS
) -> Path:
  """Writes a trained CNN workdir's latest weights as feature network `name`, with its test accuracy."""
  trained = TrainedModel(workdir)
  if trained.config.model.name != "cnn":
    raise CheckpointError(f"{workdir} holds a {trained.config.model.name!r} model; the feature network is a 'cnn'.")
  test_metrics = trained.evaluate("test")
  metadata = {
    "trained_steps": trained.step,
    "test_accuracy": test_metrics["classification/accuracy"],
    "config": "configs/cnn_fashion_mnist.py",
    "reproduce": (
      "gdjax train --config configs/cnn_fashion_mnist.py --workdir workdirs/cnn_fashion_mnist && "
      "python -m gdjax.inference export_feature_network --workdir workdirs/cnn_fashion_mnist"
    ),
  }
  variables = trained.task.inference_params(trained.state)
  return feature_network.save(variables, trained.config.model.to_dict(), trained.image_shape, metadata, name, directory)


def main() -> None:
  parser = argparse.ArgumentParser(description="Maintenance commands on trained workdirs.")
  commands = parser.add_subparsers(dest="command", required=True)
  export = commands.add_parser("export_feature_network", help="write a trained CNN workdir as gdjax's feature network")
  export.add_argument("--workdir", required=True)
  export.add_argument("--name", default=feature_network.DEFAULT_NAME)
  args = parser.parse_args()
  path = export_feature_network(args.workdir, args.name)
  print(f"Wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
  main()
