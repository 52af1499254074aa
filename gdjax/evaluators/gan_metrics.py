"""Sample-quality metrics on feature vectors: FID, KID, precision/recall, classifier score.

All take features (or class probabilities) as arrays and return arrays, in
JAX. Statistics are accumulated in float32 sums over streamed batches; the
Fréchet distance uses symmetric eigendecompositions, which every JAX backend
has, instead of a general matrix square root.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class GaussianStats:
  """Streams feature batches into the mean and covariance of a Gaussian fit."""

  def __init__(self, dim: int):
    self.count = 0
    self.total = np.zeros(dim, np.float64)
    self.outer = np.zeros((dim, dim), np.float64)

  def update(self, features) -> None:
    features = np.asarray(features, np.float64)
    self.count += features.shape[0]
    self.total += features.sum(0)
    self.outer += features.T @ features

  def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
    mean = self.total / self.count
    covariance = (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
    return mean, covariance


def _psd_sqrt(matrix: jax.Array) -> jax.Array:
  eigenvalues, eigenvectors = jnp.linalg.eigh(matrix)
  return (eigenvectors * jnp.sqrt(jnp.clip(eigenvalues, 0.0))[None, :]) @ eigenvectors.T


def frechet_distance(mean1, cov1, mean2, cov2) -> jax.Array:
  """`|m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2))` between two Gaussians.

  `tr((C1 C2)^(1/2))` equals `tr((C1^(1/2) C2 C1^(1/2))^(1/2))`, a square root
  of a symmetric PSD matrix, so two `eigh` calls compute it stably.

  References:
    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a
    Local Nash Equilibrium", NeurIPS 2017 (FID).
  """
  mean1, cov1, mean2, cov2 = (jnp.asarray(a) for a in (mean1, cov1, mean2, cov2))
  sqrt_cov1 = _psd_sqrt(cov1)
  middle = sqrt_cov1 @ cov2 @ sqrt_cov1
  eigenvalues = jnp.linalg.eigvalsh(0.5 * (middle + middle.T))
  trace_sqrt = jnp.sum(jnp.sqrt(jnp.clip(eigenvalues, 0.0)))
  return jnp.sum(jnp.square(mean1 - mean2)) + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * trace_sqrt


def kernel_inception_distance(
  features1: jax.Array, features2: jax.Array, *, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[jax.Array, jax.Array]:
  """Unbiased MMD^2 with the kernel `(x.y / d + 1)^3`, mean and std over subsets.

  References:
    Bińkowski et al., "Demystifying MMD GANs", ICLR 2018 (KID).
  """
  features1, features2 = jnp.asarray(features1), jnp.asarray(features2)
  m = min(subset_size, features1.shape[0], features2.shape[0])
  dim = features1.shape[1]
  keys = jax.random.split(jax.random.key(seed), num_subsets)

  def one_subset(key):
    key1, key2 = jax.random.split(key)
    x = features1[jax.random.choice(key1, features1.shape[0], (m,), replace=False)]
    y = features2[jax.random.choice(key2, features2.shape[0], (m,), replace=False)]
    k_xx = (x @ x.T / dim + 1.0) ** 3
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    off_diagonal = 1.0 - jnp.eye(m)
    return (
      jnp.sum(k_xx * off_diagonal) / (m * (m - 1)) + jnp.sum(k_yy * off_diagonal) / (m * (m - 1)) - 2.0 * jnp.mean(k_xy)
    )

  values = jax.lax.map(one_subset, keys)
  return jnp.mean(values), jnp.std(values)


def _pairwise_sq_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.clip(jnp.sum(x * x, 1)[:, None] - 2.0 * x @ y.T + jnp.sum(y * y, 1)[None, :], 0.0)


def knn_radii(features: jax.Array, k: int, *, chunk: int = 1000) -> jax.Array:
  """Squared distance from each point to its k-th nearest other point."""
  features = jnp.asarray(features)
  radii = []
  for start in range(0, features.shape[0], chunk):
    distances = _pairwise_sq_distances(features[start : start + chunk], features)
    # The smallest distance is the point itself (0), so the k-th neighbour is index k.
    radii.append(jnp.sort(distances, axis=1)[:, k])
  return jnp.concatenate(radii)


def fraction_inside_manifold(
  queries: jax.Array, support: jax.Array, support_radii: jax.Array, *, chunk: int = 1000
) -> jax.Array:
  """Fraction of `queries` inside at least one k-NN ball around `support`."""
  queries, support = jnp.asarray(queries), jnp.asarray(support)
  inside = []
  for start in range(0, queries.shape[0], chunk):
    distances = _pairwise_sq_distances(queries[start : start + chunk], support)
    inside.append(jnp.any(distances <= support_radii[None, :], axis=1))
  return jnp.mean(jnp.concatenate(inside).astype(jnp.float32))


def precision_recall(real: jax.Array, fake: jax.Array, *, k: int = 3) -> tuple[jax.Array, jax.Array]:
  """Improved precision and recall of generated samples.

  Precision: the share of generated samples inside the real manifold (the
  union of k-NN balls around real samples). Recall: the share of real
  samples inside the generated manifold.

  References:
    Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
    Generative Models", NeurIPS 2019.
  """
  precision = fraction_inside_manifold(fake, real, knn_radii(real, k))
  recall = fraction_inside_manifold(real, fake, knn_radii(fake, k))
  return precision, recall


def classifier_score(probabilities: jax.Array, *, num_splits: int = 10) -> tuple[jax.Array, jax.Array]:
  """`exp(E_x KL(p(y|x) || p(y)))`, the Inception Score formula on any classifier.

  References:
    Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016.
  """
  probabilities = jnp.asarray(probabilities)
  splits = jnp.array_split(probabilities, num_splits)
  scores = []
  for p in splits:
    marginal = jnp.mean(p, axis=0, keepdims=True)
    kl = jnp.sum(p * (jnp.log(p + 1e-12) - jnp.log(marginal + 1e-12)), axis=1)
    scores.append(jnp.exp(jnp.mean(kl)))
  scores = jnp.stack(scores)
  return jnp.mean(scores), jnp.std(scores)
