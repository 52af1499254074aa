"""Classifier modules: shapes, parameter counts, train/eval behaviour, config errors."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gdjax import models
from gdjax.errors import ConfigError


def init(model, batch=3):
  x = jnp.linspace(-1, 1, batch * 28 * 28).reshape(batch, 28, 28, 1)
  variables = model.init(jax.random.key(0), x, train=False)
  return x, variables


def test_linear_classifier_is_affine_in_the_pixels():
  model = models.LinearClassifier()
  x, variables = init(model)
  assert models.count_parameters(variables["params"]) == 784 * 10 + 10
  w = jax.random.normal(jax.random.key(1), (784, 10))
  b = jnp.arange(10.0)
  scores = model.apply({"params": {"Dense_0": {"kernel": w, "bias": b}}}, x)
  expected = np.asarray(x).reshape(3, -1) @ np.asarray(w) + np.asarray(b)
  np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_mlp_parameter_count():
  model = models.MLPClassifier(hidden_sizes=(256, 128, 100))
  _, variables = init(model)
  expected = (784 * 256 + 256) + (256 * 128 + 128) + (128 * 100 + 100) + (100 * 10 + 10)
  assert models.count_parameters(variables["params"]) == expected


def test_cnn_shapes_and_dropout_only_in_training():
  model = models.CNNClassifier(stage_widths=(4, 8), dense_width=16, dropout_rate=0.5)
  x, variables = init(model)
  eval_a = model.apply(variables, x, train=False)
  eval_b = model.apply(variables, x, train=False)
  assert eval_a.shape == (3, 10)
  np.testing.assert_array_equal(eval_a, eval_b)
  train_out, _ = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
  assert not np.allclose(train_out, eval_a)


def test_build_model_from_config_and_errors():
  model = models.build_model(ml_collections.ConfigDict(dict(name="mlp", hidden_sizes=[8])))
  assert isinstance(model, models.MLPClassifier) and model.hidden_sizes == (8,)
  with pytest.raises(ConfigError, match="one of"):
    models.build_model(ml_collections.ConfigDict(dict(name="resnet")))
  with pytest.raises(ConfigError, match="does not take"):
    models.build_model(ml_collections.ConfigDict(dict(name="linear", hidden_sizes=[8])))
