"""The losses of a semi-supervised GAN with K class logits, as pure functions of logits and features.

The discriminator is a (K+1)-class classifier whose "fake" logit is fixed at
zero (Salimans et al. 2016, Section 5). With class logits l_1..l_K and
Z(x) = sum_k exp(l_k(x)), the probability that x is real is

  D(x) = Z(x) / (Z(x) + 1) = sigmoid(logsumexp_k l_k(x)),

so the unsupervised terms are softplus functions of logsumexp(l):

  -log D(x)          = softplus(-logsumexp(l(x)))     (a real, unlabelled image)
  -log(1 - D(G(z)))  = softplus(logsumexp(l(G(z))))   (a generated image)

and the supervised term is the K-class cross-entropy (the "fake" class
never holds a labelled example, and fixing its logit at zero removes the
softmax's spare degree of freedom). Each function returns per-example values,
except feature matching, which compares two batch means.

References:
  Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen, "Improved Techniques
  for Training GANs", NeurIPS 2016: Section 3.1 (feature matching) and
  Section 5 (semi-supervised learning); their code weighs the two
  unsupervised terms by 1/2 each, as `discriminator_loss` does.
  Laine & Aila, "Temporal Ensembling for Semi-Supervised Learning", ICLR
  2017 (the Pi-model's consistency term and its ramp-up).
  Wei, Gong, Liu, Lu & Wang, "Improving the Improved Training of Wasserstein
  GANs: A Consistency Term and Its Dual Effect", ICLR 2018 (a consistency
  term in the semi-supervised GAN's discriminator).
  Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization",
  NeurIPS 2005; Dai, Yang, Yang, Cohen & Salakhutdinov, "Good
  Semi-supervised Learning That Requires a Bad GAN", NeurIPS 2017 (the
  conditional-entropy term on unlabelled images).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def real_score(logits: jax.Array) -> jax.Array:
  """logsumexp of the class logits `[batch, K]`: the logit of D(x) = P(real | x)."""
  return jax.nn.logsumexp(logits, axis=-1)


def supervised_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """`[batch]` -log p(y | x, real) = logsumexp(l) - l_y."""
  return real_score(logits) - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]


def unlabelled_real_loss(logits: jax.Array) -> jax.Array:
  """`[batch]` -log D(x) for real, unlabelled images: softplus(-logsumexp(l))."""
  return jax.nn.softplus(-real_score(logits))


def generated_loss(logits: jax.Array) -> jax.Array:
  """`[batch]` -log(1 - D(G(z))) for generated images: softplus(logsumexp(l))."""
  return jax.nn.softplus(real_score(logits))


def discriminator_loss(
  labelled_logits: jax.Array,
  labels: jax.Array,
  unlabelled_logits: jax.Array,
  generated_logits: jax.Array,
  unsupervised_weight: float = 1.0,
) -> tuple[jax.Array, dict]:
  """The scalar objective: mean cross-entropy + w * (mean -log D(real) + mean -log(1 - D(fake))) / 2.

  Returns it and its parts, for logging.
  """
  supervised = jnp.mean(supervised_cross_entropy(labelled_logits, labels))
  unsupervised = 0.5 * jnp.mean(unlabelled_real_loss(unlabelled_logits)) + 0.5 * jnp.mean(
    generated_loss(generated_logits)
  )
  return supervised + unsupervised_weight * unsupervised, {
    "d_supervised_loss": supervised,
    "d_unsupervised_loss": unsupervised,
  }


def consistency(logits_a: jax.Array, logits_b: jax.Array) -> jax.Array:
  """`[batch]` squared L2 distance between the class probabilities of two views of the same images.

  The Pi-model's consistency term (Laine & Aila 2017; Sajjadi et al. 2016),
  which CT-GAN (Wei et al. 2018) adds to the semi-supervised GAN: two passes
  of the discriminator over differently augmented and noised copies of the
  unlabelled batch should agree on p(y | x, real) = softmax(l). Gradients
  flow through both views.
  """
  difference = jax.nn.softmax(logits_a, axis=-1) - jax.nn.softmax(logits_b, axis=-1)
  return jnp.sum(jnp.square(difference), axis=-1)


def consistency_ramp_up(step: jax.Array, ramp_up_steps: int) -> jax.Array:
  """Laine & Aila's Gaussian ramp-up of the consistency weight: exp(-5 (1 - t)^2), t = min(step / ramp_up_steps, 1)."""
  if ramp_up_steps <= 0:
    return jnp.ones((), jnp.float32)
  progress = jnp.clip(jnp.asarray(step, jnp.float32) / ramp_up_steps, 0.0, 1.0)
  return jnp.exp(-5.0 * jnp.square(1.0 - progress))


def class_entropy(logits: jax.Array) -> jax.Array:
  """`[batch]` entropy, in nats, of p(y | x, real) = softmax(l): -sum_k p_k log p_k.

  Minimised on the unlabelled batch it pushes the decision boundaries away
  from the data (Grandvalet & Bengio 2005), the conditional-entropy term Dai
  et al. (2017) add to this GAN's discriminator.
  """
  log_probabilities = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.sum(jnp.exp(log_probabilities) * log_probabilities, axis=-1)


def feature_matching(real_features: jax.Array, generated_features: jax.Array) -> jax.Array:
  """Mean over feature dimensions of (batch mean of f(real) - batch mean of f(G(z)))^2.

  Salimans et al.'s Section 3.1 writes the squared L2 norm of the difference;
  their code takes its mean over the F dimensions, which this follows (the
  same objective scaled by 1/F).
  """
  difference = jnp.mean(real_features, axis=0) - jnp.mean(generated_features, axis=0)
  return jnp.mean(jnp.square(difference))
