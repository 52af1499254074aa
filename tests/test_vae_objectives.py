"""Log-densities and bounds of latent-variable models against SciPy, NumPy and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from gdjax import vae_objectives


class TestDensities:
  def test_gaussian_log_density_against_scipy(self):
    rng = np.random.default_rng(0)
    z, mean, log_variance = rng.normal(size=(3, 5, 4))
    expected = [
      scipy.stats.multivariate_normal(mean[i], np.diag(np.exp(log_variance[i]))).logpdf(z[i]) for i in range(5)
    ]
    got = jax.jit(vae_objectives.gaussian_log_density)(z, mean, log_variance)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(
      jax.jit(vae_objectives.standard_normal_log_density)(z), scipy.stats.norm.logpdf(z).sum(-1), rtol=1e-5
    )

  def test_kl_to_standard_normal_against_numerical_integration(self):
    mean, log_variance = 0.7, np.log(0.3)
    q = scipy.stats.norm(mean, np.exp(0.5 * log_variance))
    expected, _ = scipy.integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - scipy.stats.norm.logpdf(z)), -10, 10)
    got = jax.jit(vae_objectives.kl_to_standard_normal)(jnp.array([[mean]]), jnp.array([[log_variance]]))
    np.testing.assert_allclose(got, [expected], rtol=1e-5)

  def test_bernoulli_log_likelihood_against_numpy(self):
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(4, 28, 28, 1)).astype(np.float32)
    x = rng.integers(0, 2, size=logits.shape).astype(np.float32)
    p = scipy.special.expit(logits.astype(np.float64))
    expected = (x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(4, -1).sum(-1)
    np.testing.assert_allclose(jax.jit(vae_objectives.bernoulli_log_likelihood)(logits, x), expected, rtol=1e-5)

  @pytest.mark.parametrize("mean, log_scale", [(0.1, -3.0), (-0.95, -4.0), (0.5, -8.0)])
  def test_discretized_logistic_sums_to_one_and_matches_the_logistic_cdf(self, mean, log_scale):
    levels = np.arange(256, dtype=np.float32) / 127.5 - 1.0
    x = levels.reshape(256, 1, 1, 1)
    means, log_scales = np.full_like(x, mean), np.full_like(x, log_scale)
    log_p = np.asarray(jax.jit(vae_objectives.discretized_logistic_log_likelihood)(means, log_scales, x), np.float64)
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=2e-4)
    # Interior bins: the logistic's probability between the bin's edges.
    cdf = scipy.stats.logistic(loc=mean, scale=np.exp(log_scale)).cdf
    interior = np.array([cdf(v + 1 / 255) - cdf(v - 1 / 255) for v in levels[1:-1].astype(np.float64)])
    big = interior > 1e-4  # Where the difference of sigmoids is well conditioned in float32.
    np.testing.assert_allclose(np.exp(log_p[1:-1])[big], interior[big], rtol=2e-3)
    assert np.exp(log_p[0]) == pytest.approx(cdf(levels[0] + 1 / 255), rel=1e-3, abs=1e-7)

  def test_importance_weighted_bound_is_log_mean_exp(self):
    log_weights = np.random.default_rng(2).normal(loc=-200, scale=5, size=(3, 1000))
    expected = scipy.special.logsumexp(log_weights, axis=1) - np.log(1000)
    np.testing.assert_allclose(jax.jit(vae_objectives.importance_weighted_bound)(log_weights), expected, rtol=1e-6)
