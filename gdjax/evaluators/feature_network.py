"""The Fashion-MNIST classifier whose features FID, KID and precision/recall use.

Inception weights cannot be downloaded here, and Inception features are a poor
fit for 28x28 grey images anyway. As TF-GAN does for MNIST, gdjax scores
generators in the feature space of a domain classifier: its own CNN config
trained on Fashion-MNIST, shipped in `gdjax/assets/` as Flax msgpack bytes plus
a JSON file with the model config and the command that reproduces it. The
SHA-256 of the weights goes into every result, since FIDs are comparable
only under the same feature network.

Re-export after training the CNN config:
  python -m gdjax.inference export_feature_network --workdir workdirs/cnn_fashion_mnist
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gdjax import models, samples
from gdjax.errors import CheckpointError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_NAME = "fashion_mnist_cnn"


class FeatureNetwork:
  """`features_and_probabilities(images in [-1, 1]) -> ([N, D], [N, classes])`."""

  def __init__(self, name: str = DEFAULT_NAME, directory: str | Path = ASSETS):
    weights_path = Path(directory) / f"{name}.msgpack"
    meta_path = Path(directory) / f"{name}.json"
    if not weights_path.is_file() or not meta_path.is_file():
      raise CheckpointError(
        f"Feature network {name!r} is missing from {directory}. Re-create it with "
        "`python -m gdjax.inference export_feature_network --workdir <trained CNN workdir>`."
      )
    raw = weights_path.read_bytes()
    self.sha256 = hashlib.sha256(raw).hexdigest()
    self.metadata = json.loads(meta_path.read_text())
    self.name = name
    self.model = models.build_model(ml_collections.ConfigDict(self.metadata["model"]))
    image_shape = tuple(self.metadata["input_shape"])
    # Only the structure is needed: abstract init skips ~150 one-op compilations (seconds on a CPU).
    template = jax.eval_shape(lambda: self.model.init(jax.random.key(0), jnp.zeros((1, *image_shape)), train=False))
    self.variables = flax.serialization.from_bytes(template, raw)
    self.image_shape = image_shape

  @property
  def protocol(self) -> dict:
    return {"feature_network": self.name, "feature_network_sha256": self.sha256[:16]}

  @functools.partial(jax.jit, static_argnums=0)
  def features_and_probabilities(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    scores, features = self.model.apply(self.variables, images, train=False, with_features=True)
    return features, jax.nn.softmax(scores, axis=-1)

  def of_uint8_images(self, images_uint8, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Features and class probabilities of uint8 images `[N, h, w, c]` as NumPy, in padded batches of one shape."""
    features, probabilities = [], []
    for start in range(0, len(images_uint8), batch_size):
      chunk = np.asarray(images_uint8[start : start + batch_size])
      padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
      f, p = jax.device_get(self.features_and_probabilities(samples.to_float(jnp.asarray(padded))))
      features.append(f[: len(chunk)])
      probabilities.append(p[: len(chunk)])
    return np.concatenate(features), np.concatenate(probabilities)

  def __hash__(self):
    return hash(self.sha256)

  def __eq__(self, other):
    return isinstance(other, FeatureNetwork) and other.sha256 == self.sha256


@functools.lru_cache(maxsize=4)
def load(name: str = DEFAULT_NAME, directory: str | Path = "") -> FeatureNetwork:
  """The feature network `name` from `directory` ("" for the copy shipped in gdjax/assets), loaded once."""
  return FeatureNetwork(name, directory or ASSETS)


def save(
  variables, model_config: dict, input_shape, metadata: dict, name: str = DEFAULT_NAME, directory=ASSETS
) -> Path:
  """Writes a CNN's variables and model config as feature network `name`; returns the weights' path.

  `metadata` (how it was trained, its test accuracy, the command that
  reproduces it) goes into the JSON file beside the weights.
  """
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  weights = flax.serialization.to_bytes(jax.device_get(variables))
  (directory / f"{name}.msgpack").write_bytes(weights)
  meta = {
    "model": model_config,
    "input_shape": list(input_shape),
    **metadata,
    "sha256": hashlib.sha256(weights).hexdigest(),
  }
  (directory / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
  return directory / f"{name}.msgpack"


__all__ = ["FeatureNetwork", "load", "save"]
