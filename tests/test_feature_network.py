"""The shipped Fashion-MNIST feature network loads, matches its recorded hash, and runs."""

import hashlib
import json

import jax.numpy as jnp
import numpy as np

from gdjax.evaluators import feature_network


def test_shipped_feature_network_matches_its_metadata():
  network = feature_network.FeatureNetwork()
  metadata = json.loads((feature_network.ASSETS / "fashion_mnist_cnn.json").read_text())
  raw = (feature_network.ASSETS / "fashion_mnist_cnn.msgpack").read_bytes()
  assert network.sha256 == hashlib.sha256(raw).hexdigest() == metadata["sha256"]
  assert network.protocol["feature_network_sha256"] == metadata["sha256"][:16]
  assert metadata["test_accuracy"] > 0.9  # A useful Fashion-MNIST classifier.
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (5, 28, 28, 1)), jnp.float32)
  features, probabilities = network.features_and_probabilities(images)
  assert features.shape == (5, metadata["model"]["dense_width"])
  assert np.all(np.asarray(features) >= 0)  # ReLU activations.
  np.testing.assert_allclose(np.asarray(probabilities).sum(-1), 1.0, rtol=1e-5)


def test_missing_feature_network_says_how_to_make_it(tmp_path):
  import pytest

  from gdjax.errors import CheckpointError

  with pytest.raises(CheckpointError, match="python -m gdjax.inference export_feature_network"):
    feature_network.FeatureNetwork("absent", tmp_path)
