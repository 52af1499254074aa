"""Optimizers and schedules from configs."""

import ml_collections
import numpy as np
import pytest

from gdjax import optimizers
from gdjax.errors import ConfigError


def build(optimizer, schedule=None, total_steps=100):
  return optimizers.build_optimizer(
    ml_collections.ConfigDict(optimizer), ml_collections.ConfigDict(schedule or {"name": "constant"}), total_steps
  )


def test_cosine_schedule_values():
  _, schedule = build({"name": "adam", "learning_rate": 0.1}, {"name": "cosine", "warmup_steps": 10}, total_steps=110)
  assert float(schedule(0)) == 0.0
  np.testing.assert_allclose(float(schedule(10)), 0.1, rtol=1e-6)
  # Halfway through the decay: 0.1 * (1 + cos(pi / 2)) / 2 = 0.05.
  np.testing.assert_allclose(float(schedule(60)), 0.05, rtol=1e-5)
  np.testing.assert_allclose(float(schedule(110)), 0.0, atol=1e-7)


def test_sgd_with_momentum_and_clipping():
  optimizer, _ = build({"name": "sgd", "learning_rate": 0.5, "momentum": 0.9, "grad_clip_norm": 1.0})
  params = {"w": np.zeros(2, np.float32)}
  state = optimizer.init(params)
  updates, _ = optimizer.update({"w": np.array([30.0, 40.0], np.float32)}, state, params)
  # Clipped to norm 1 -> (0.6, 0.8); first SGD step: -lr * g.
  np.testing.assert_allclose(updates["w"], [-0.3, -0.4], rtol=1e-6)


@pytest.mark.parametrize(
  "optimizer, message",
  [
    ({"name": "adamm", "learning_rate": 1e-3}, "Unknown optimizer"),
    ({"name": "adam", "learning_rate": 1e-3, "beta1": 0.5}, "takes no argument"),
  ],
)
def test_config_errors(optimizer, message):
  with pytest.raises(ConfigError, match=message):
    build(optimizer)


def test_weight_decay_adds_the_l2_gradient_of_kernels_only():
  optimizer, _ = optimizers.build_optimizer(
    ml_collections.ConfigDict({"name": "sgd", "learning_rate": 1.0}),
    ml_collections.ConfigDict({"name": "constant"}),
    10,
    weight_decay=0.1,
  )
  params = {"Dense_0": {"kernel": np.array([[2.0, -4.0]], np.float32), "bias": np.array([3.0, 3.0], np.float32)}}
  grads = {"Dense_0": {"kernel": np.array([[1.0, 1.0]], np.float32), "bias": np.array([1.0, 1.0], np.float32)}}
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  # d/dw of 0.1 * |w|^2 / 2 is 0.1 * w, for the kernel only; SGD at rate 1 moves by minus the gradient.
  np.testing.assert_allclose(updates["Dense_0"]["kernel"], [[-(1 + 0.2), -(1 - 0.4)]], rtol=1e-6)
  np.testing.assert_allclose(updates["Dense_0"]["bias"], [-1.0, -1.0], rtol=1e-6)
