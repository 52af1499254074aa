"""Adversarial losses and penalties against NumPy formulas and analytic gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdjax import gan_losses


def np_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture
def scores():
  rng = np.random.default_rng(0)
  return rng.normal(size=6).astype(np.float32) * 2, rng.normal(size=6).astype(np.float32) * 2


class TestLosses:
  def test_minimax_and_non_saturating(self, scores):
    real, fake = scores
    d = jax.jit(gan_losses.minimax_discriminator_loss)(real, fake)
    np.testing.assert_allclose(d, -np.log(np_sigmoid(real)) - np.log(1 - np_sigmoid(fake)), rtol=1e-5)
    g_mm = jax.jit(gan_losses.minimax_generator_loss)(fake)
    np.testing.assert_allclose(g_mm, np.log(1 - np_sigmoid(fake)), rtol=1e-5)
    g_ns = jax.jit(gan_losses.non_saturating_generator_loss)(fake)
    np.testing.assert_allclose(g_ns, -np.log(np_sigmoid(fake)), rtol=1e-5)

  def test_minimax_is_stable_for_large_logits(self):
    d = gan_losses.minimax_discriminator_loss(jnp.array([100.0]), jnp.array([-100.0]))
    g = gan_losses.non_saturating_generator_loss(jnp.array([-100.0]))
    np.testing.assert_allclose(d, [0.0], atol=1e-6)
    np.testing.assert_allclose(g, [100.0], rtol=1e-6)

  def test_least_squares(self, scores):
    real, fake = scores
    np.testing.assert_allclose(
      gan_losses.least_squares_discriminator_loss(real, fake), 0.5 * (real - 1) ** 2 + 0.5 * fake**2, rtol=1e-6
    )
    np.testing.assert_allclose(gan_losses.least_squares_generator_loss(fake), 0.5 * (fake - 1) ** 2, rtol=1e-6)

  def test_hinge_hand_worked(self):
    real = jnp.array([2.0, 0.5, -1.0])
    fake = jnp.array([-2.0, 0.0, 0.5])
    # max(0, 1 - r) + max(0, 1 + f): 0 + 0, 0.5 + 1, 2 + 1.5.
    np.testing.assert_allclose(gan_losses.hinge_discriminator_loss(real, fake), [0.0, 1.5, 3.5])
    np.testing.assert_allclose(gan_losses.negated_score_generator_loss(fake), [2.0, 0.0, -0.5])

  def test_wasserstein(self, scores):
    real, fake = scores
    np.testing.assert_allclose(gan_losses.wasserstein_discriminator_loss(real, fake), fake - real, rtol=1e-6)

  def test_lookup(self):
    assert gan_losses.get_adversarial_loss("hinge").generator is gan_losses.negated_score_generator_loss
    from gdjax.errors import ConfigError

    with pytest.raises(ConfigError, match="non_saturating"):
      gan_losses.get_adversarial_loss("nonsaturating")


class TestPenalties:
  def test_gradient_penalty_of_a_linear_critic(self):
    # D(x) = <w, x>: the gradient is w everywhere, so the penalty is (|w| - 1)^2.
    w = jnp.arange(12.0).reshape(2, 2, 3) / 10.0
    score_fn = lambda x: jnp.sum(x * w[None], axis=(1, 2, 3))
    real = jax.random.normal(jax.random.key(0), (5, 2, 2, 3))
    fake = jax.random.normal(jax.random.key(1), (5, 2, 2, 3))
    penalty = jax.jit(gan_losses.wgan_gradient_penalty, static_argnums=0)(score_fn, real, fake, jax.random.key(2))
    expected = (np.linalg.norm(np.asarray(w)) - 1.0) ** 2
    np.testing.assert_allclose(penalty, np.full(5, expected), rtol=1e-5)

  def test_gradient_penalty_of_a_quadratic_critic(self):
    # D(x) = |x|^2 / 2: the gradient at x_hat is x_hat, so the penalty is (|x_hat| - 1)^2.
    score_fn = lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3))
    real = np.random.default_rng(0).normal(size=(4, 3, 3, 1)).astype(np.float32)
    fake = np.random.default_rng(1).normal(size=(4, 3, 3, 1)).astype(np.float32)
    rng = jax.random.key(7)
    penalty = gan_losses.wgan_gradient_penalty(score_fn, real, fake, rng)
    u = np.asarray(jax.random.uniform(rng, (4, 1, 1, 1)))  # The same draw the penalty makes.
    x_hat = u * real + (1 - u) * fake
    expected = (np.sqrt((x_hat**2).sum(axis=(1, 2, 3))) - 1.0) ** 2
    np.testing.assert_allclose(penalty, expected, rtol=1e-4)

  def test_r1_of_a_quadratic_critic(self):
    # D(x) = sum(a * x^2): the gradient is 2 a x, so R1 = sum((2 a x)^2).
    a = 0.3
    score_fn = lambda x: a * jnp.sum(x**2, axis=(1, 2, 3))
    real = np.random.default_rng(3).normal(size=(4, 2, 2, 1)).astype(np.float32)
    expected = ((2 * a * real) ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(jax.jit(gan_losses.r1_penalty, static_argnums=0)(score_fn, real), expected, rtol=1e-5)
