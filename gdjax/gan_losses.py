"""Adversarial losses and discriminator penalties: arrays in, arrays out.

Discriminator outputs are raw scores (logits for the probabilistic losses),
one per example. Every loss returns per-example values of shape `[batch]`;
the caller takes the mean. Each loss is a pair: what the discriminator
minimises and what the generator minimises.

| name | discriminator minimises | generator minimises | paper |
|---|---|---|---|
| minimax | -log D(x) - log(1 - D(G(z))) | log(1 - D(G(z))) | Goodfellow et al. 2014 |
| non_saturating | same as minimax | -log D(G(z)) | Goodfellow et al. 2014, sec. 3 |
| least_squares | (D(x) - 1)^2 / 2 + D(G(z))^2 / 2 | (D(G(z)) - 1)^2 / 2 | Mao et al. 2017 |
| hinge | max(0, 1 - D(x)) + max(0, 1 + D(G(z))) | -D(G(z)) | Lim & Ye 2017; Miyato et al. 2018 |
| wasserstein | D(G(z)) - D(x) | -D(G(z)) | Arjovsky et al. 2017 |

Here D(.) is sigmoid(logit) for the first two and the raw score otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gdjax.errors import ConfigError

# A discriminator as a function of images only: `images -> [batch] scores`.
ScoreFn = Callable[[jax.Array], jax.Array]


def minimax_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """`-log sigmoid(real) - log(1 - sigmoid(fake))`, i.e. binary cross-entropy.

  References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
  """
  return jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)


def minimax_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """`log(1 - sigmoid(fake)) = -softplus(fake)`: the saturating original objective."""
  return -jax.nn.softplus(fake_logits)


def non_saturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """`-log sigmoid(fake) = softplus(-fake)`: strong gradients while D wins.

  References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, section 3.
  """
  return jax.nn.softplus(-fake_logits)


def least_squares_discriminator_loss(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
  """`(real - 1)^2 / 2 + fake^2 / 2` (targets a=0 for fake, b=1 for real).

  References:
    Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017.
  """
  return 0.5 * jnp.square(real_scores - 1.0) + 0.5 * jnp.square(fake_scores)


def least_squares_generator_loss(fake_scores: jax.Array) -> jax.Array:
  """`(fake - 1)^2 / 2` (target c=1)."""
  return 0.5 * jnp.square(fake_scores - 1.0)


def hinge_discriminator_loss(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
  """`max(0, 1 - real) + max(0, 1 + fake)`.

  References:
    Lim & Ye, "Geometric GAN", 2017; Miyato et al., "Spectral Normalization for
    Generative Adversarial Networks", ICLR 2018.
  """
  return jax.nn.relu(1.0 - real_scores) + jax.nn.relu(1.0 + fake_scores)


def wasserstein_discriminator_loss(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
  """`fake - real`: the critic's estimate of the Wasserstein-1 distance, negated.

  References:
    Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017.
  """
  return fake_scores - real_scores


def negated_score_generator_loss(fake_scores: jax.Array) -> jax.Array:
  """`-fake`: the generator loss of the hinge and Wasserstein GANs."""
  return -fake_scores


def wgan_gradient_penalty(
  score_fn: ScoreFn, real: jax.Array, fake: jax.Array, rng: jax.Array, *, target_norm: float = 1.0
) -> jax.Array:
  """`(||grad D(x_hat)||_2 - 1)^2` at random points between real and fake images.

  `x_hat = u * real + (1 - u) * fake` with `u ~ U[0, 1]` per example. The
  discriminator must treat examples independently (no batch norm).

  References:
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.

  Returns:
    `[batch]` penalties; multiply by the weight (10 in the paper).
  """
  u = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype)
  interpolates = u * real + (1.0 - u) * fake
  grads = _per_example_input_grads(score_fn, interpolates)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim))) + 1e-12)
  return jnp.square(norms - target_norm)


def r1_penalty(score_fn: ScoreFn, real: jax.Array) -> jax.Array:
  """`||grad D(x)||_2^2` at real images.

  References:
    Mescheder, Geiger & Nowozin, "Which Training Methods for GANs do actually
    Converge?", ICML 2018.

  Returns:
    `[batch]` squared gradient norms; multiply by gamma / 2.
  """
  grads = _per_example_input_grads(score_fn, real)
  return jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim)))


def _per_example_input_grads(score_fn: ScoreFn, images: jax.Array) -> jax.Array:
  # Summing over the batch gives each example's own gradient, because example
  # i's score depends only on image i.
  return jax.grad(lambda x: jnp.sum(score_fn(x)))(images)


class AdversarialLoss(NamedTuple):
  discriminator: Callable[[jax.Array, jax.Array], jax.Array]
  generator: Callable[[jax.Array], jax.Array]


ADVERSARIAL_LOSSES = {
  "minimax": AdversarialLoss(minimax_discriminator_loss, minimax_generator_loss),
  "non_saturating": AdversarialLoss(minimax_discriminator_loss, non_saturating_generator_loss),
  "least_squares": AdversarialLoss(least_squares_discriminator_loss, least_squares_generator_loss),
  "hinge": AdversarialLoss(hinge_discriminator_loss, negated_score_generator_loss),
  "wasserstein": AdversarialLoss(wasserstein_discriminator_loss, negated_score_generator_loss),
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
  if name not in ADVERSARIAL_LOSSES:
    raise ConfigError(f"Unknown GAN loss {name!r}. Set --config.gan_loss to one of {sorted(ADVERSARIAL_LOSSES)}.")
  return ADVERSARIAL_LOSSES[name]
