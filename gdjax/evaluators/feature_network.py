"""The Fashion-MNIST classifier whose features FID, KID and precision/recall use.

Inception weights cannot be downloaded here, and Inception features are a poor
fit for 28x28 grey images anyway. As TF-GAN does for MNIST, gdjax scores
generators in the feature space of a domain classifier: its own CNN config
trained on Fashion-MNIST, shipped in `gdjax/assets/` as Flax msgpack bytes plus
a JSON file with the model config and the command that reproduces it. The
SHA-256 of the weights goes into every result, since FIDs are comparable
only under the same feature network.

Re-export after training the CNN config:
  python -m gdjax.evaluators.feature_network --workdir workdirs/cnn_fashion_mnist
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections

from gdjax import models
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
        "`python -m gdjax.evaluators.feature_network --workdir <trained CNN workdir>`."
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

  def __hash__(self):
    return hash(self.sha256)

  def __eq__(self, other):
    return isinstance(other, FeatureNetwork) and other.sha256 == self.sha256


def export_from_workdir(workdir: str | Path, name: str = DEFAULT_NAME, directory: str | Path = ASSETS) -> Path:
  """Writes a trained CNN workdir's latest weights as the feature network."""
  from gdjax.inference import TrainedModel

  trained = TrainedModel(workdir)
  if trained.config.model.name != "cnn":
    raise CheckpointError(f"{workdir} holds a {trained.config.model.name!r} model; the feature network is a 'cnn'.")
  variables = {"params": trained.state.params, "batch_stats": trained.state.batch_stats}
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  weights = flax.serialization.to_bytes(jax.device_get(variables))
  (directory / f"{name}.msgpack").write_bytes(weights)
  test_metrics = trained.evaluate("test")
  metadata = {
    "model": trained.config.model.to_dict(),
    "input_shape": list(trained.image_shape),
    "trained_steps": trained.step,
    "test_accuracy": test_metrics["accuracy"],
    "config": "configs/cnn_fashion_mnist.py",
    "reproduce": (
      "gdjax train --config configs/cnn_fashion_mnist.py --workdir workdirs/cnn_fashion_mnist && "
      "python -m gdjax.evaluators.feature_network --workdir workdirs/cnn_fashion_mnist"
    ),
    "sha256": hashlib.sha256(weights).hexdigest(),
  }
  (directory / f"{name}.json").write_text(json.dumps(metadata, indent=2) + "\n")
  return directory / f"{name}.msgpack"


def main() -> None:
  parser = argparse.ArgumentParser(description="Export a trained CNN workdir as gdjax's feature network.")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--name", default=DEFAULT_NAME)
  args = parser.parse_args()
  path = export_from_workdir(args.workdir, args.name)
  print(f"Wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
  main()


__all__ = ["FeatureNetwork", "export_from_workdir"]
