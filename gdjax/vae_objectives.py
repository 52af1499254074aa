"""Log-densities and bounds of latent-variable models: arrays in, per-example arrays out.

For a VAE with prior p(z) = N(0, I), a Gaussian encoder q(z|x) and a decoder
p(x|z), every bound on log p(x) = log ∫ p(x|z) p(z) dz is built from the log
importance weights log w = log p(x|z) + log p(z) - log q(z|x) of samples z
from q(z|x):
- the ELBO is E_q[log w] (one sample; with the Gaussian KL in closed form,
  `log p(x|z) - KL(q || p)`, which has the same expectation and lower variance);
- the importance-weighted bound with k samples is
  `logsumexp_i(log w_i) - log k`, tighter as k grows and equal to log p(x)
  in the limit; with k = 5,000 it is the usual estimate of log p(x).
All values are in nats, per example (summed over the pixels).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(z: jax.Array, mean: jax.Array, log_variance: jax.Array) -> jax.Array:
  """log N(z; mean, diag(exp(log_variance))), summed over the last axis."""
  return -0.5 * jnp.sum(LOG_2PI + log_variance + jnp.square(z - mean) * jnp.exp(-log_variance), axis=-1)


def standard_normal_log_density(z: jax.Array) -> jax.Array:
  """log N(z; 0, I), summed over the last axis."""
  return -0.5 * jnp.sum(LOG_2PI + jnp.square(z), axis=-1)


def kl_to_standard_normal(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
  """KL(N(mean, diag(exp(log_variance))) || N(0, I)), summed over the last axis.

  References:
    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, appendix B.
  """
  return 0.5 * jnp.sum(jnp.exp(log_variance) + jnp.square(mean) - 1.0 - log_variance, axis=-1)


def bernoulli_log_likelihood(logits: jax.Array, observations: jax.Array) -> jax.Array:
  """log p(x | logits) for binary x in {0, 1}, summed over every axis but the first."""
  # x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)), written stably.
  per_pixel = -(observations * jax.nn.softplus(-logits) + (1.0 - observations) * jax.nn.softplus(logits))
  return jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=-1)


def discretized_logistic_log_likelihood(mean: jax.Array, log_scale: jax.Array, observations: jax.Array) -> jax.Array:
  """log p(x) of 8-bit images scaled to [-1, 1] under a logistic discretised into 256 bins, summed per example.

  Bin i covers [x - 1/255, x + 1/255]; the first and last bins take the
  tails, so the 256 probabilities sum to one.

  References:
    Salimans et al., "PixelCNN++", ICLR 2017, section 2.1.
  """
  centered = observations - mean
  inverse_scale = jnp.exp(-log_scale)
  upper = inverse_scale * (centered + 1.0 / 255.0)
  lower = inverse_scale * (centered - 1.0 / 255.0)
  log_cdf_upper = upper - jax.nn.softplus(upper)  # log sigmoid(upper)
  log_one_minus_cdf_lower = -jax.nn.softplus(lower)  # log (1 - sigmoid(lower))
  cdf_delta = jax.nn.sigmoid(upper) - jax.nn.sigmoid(lower)
  middle = inverse_scale * centered
  # Where the bin is too narrow for the difference of sigmoids, the density at its centre times its width.
  log_pdf_mid = middle - log_scale - 2.0 * jax.nn.softplus(middle) + math.log(2.0 / 255.0)
  inner = jnp.where(cdf_delta > 1e-5, jnp.log(jnp.maximum(cdf_delta, 1e-12)), log_pdf_mid)
  per_pixel = jnp.where(
    observations < -0.999, log_cdf_upper, jnp.where(observations > 0.999, log_one_minus_cdf_lower, inner)
  )
  return jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=-1)


def importance_weighted_bound(log_weights: jax.Array, axis: int = -1) -> jax.Array:
  """`logsumexp(log w) - log k` over `axis` (k samples): the IWAE bound, a lower bound on log p(x).

  References:
    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
  """
  return jax.nn.logsumexp(log_weights, axis=axis) - jnp.log(log_weights.shape[axis])
