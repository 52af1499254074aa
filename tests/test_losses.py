"""Losses against NumPy and hand-worked values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdjax import losses


def np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


class TestSoftmaxCrossEntropy:
  def test_matches_numpy(self):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 5, 7)
    expected = -np_log_softmax(logits.astype(np.float64))[np.arange(7), labels]
    got = jax.jit(losses.softmax_cross_entropy)(logits, labels)
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  def test_uniform_logits_give_log_num_classes(self):
    got = losses.softmax_cross_entropy(jnp.zeros((2, 10)), jnp.array([3, 7]))
    np.testing.assert_allclose(got, np.log(10.0) * np.ones(2), rtol=1e-6)

  def test_label_smoothing_matches_numpy(self):
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 5)
    targets = np.full((5, 4), 0.1 / 4)
    targets[np.arange(5), labels] += 0.9
    expected = -(targets * np_log_softmax(logits.astype(np.float64))).sum(-1)
    got = losses.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  def test_rejects_mismatched_shapes(self):
    with pytest.raises(ValueError, match="batch"):
      losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros((2,), jnp.int32))


class TestCrammerSingerHinge:
  def test_hand_worked(self):
    scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5], [5.0, 0.0, 0.0]])
    labels = jnp.array([0, 2, 0])
    # Row 0: 1 + 1.5 - 2 = 0.5. Row 1: 1 + 3 - 0.5 = 3.5. Row 2: 1 + 0 - 5 < 0 -> 0.
    got = jax.jit(losses.crammer_singer_hinge)(scores, labels)
    np.testing.assert_allclose(got, [0.5, 3.5, 0.0])

  def test_matches_numpy_loop(self):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(16, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    expected = []
    for s, y in zip(scores, labels):
      wrong = max(s[j] for j in range(10) if j != y)
      expected.append(max(0.0, 0.7 + wrong - s[y]))
    got = losses.crammer_singer_hinge(scores, labels, margin=0.7)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


class TestOneVsRestHinge:
  def test_hand_worked(self):
    scores = jnp.array([[2.0, -0.5, 0.5]])
    labels = jnp.array([0])
    # Class 0, t=+1: max(0, 1 - 2) = 0. Class 1, t=-1: max(0, 1 - 0.5) = 0.5.
    # Class 2, t=-1: max(0, 1 + 0.5) = 1.5.
    np.testing.assert_allclose(jax.jit(losses.one_vs_rest_hinge)(scores, labels), [2.0])

  def test_matches_numpy(self):
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(9, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 9)
    targets = np.where(np.arange(4)[None] == labels[:, None], 1.0, -1.0)
    expected = np.maximum(0.0, 1.0 - targets * scores).sum(-1)
    np.testing.assert_allclose(losses.one_vs_rest_hinge(scores, labels), expected, rtol=1e-6)


class TestL2Penalty:
  def test_kernels_only(self):
    params = {"dense": {"kernel": jnp.array([[1.0, 2.0], [3.0, 0.0]]), "bias": jnp.array([10.0, 10.0])}}
    np.testing.assert_allclose(losses.l2_penalty(params), 0.5 * (1 + 4 + 9))
    np.testing.assert_allclose(losses.l2_penalty(params, exclude_biases=False), 0.5 * (14 + 200))


def test_unknown_loss_name_says_which_exist():
  from gdjax.errors import ConfigError

  with pytest.raises(ConfigError, match="cross_entropy"):
    losses.get_classification_loss("hingee")
