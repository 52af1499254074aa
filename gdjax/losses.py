"""Classification losses: arrays in, arrays out.

Every function returns per-example values of shape `[batch]`; reducing them
(and masking padded examples) is left to the caller, as in optax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, *, label_smoothing: float = 0.0) -> jax.Array:
  """Cross-entropy of integer `labels` under softmax(`logits`).

  With `label_smoothing` = e the target puts 1 - e on the label and spreads e
  evenly over all classes.

  References:
    Szegedy et al., "Rethinking the Inception Architecture for Computer
    Vision", CVPR 2016 (label smoothing).

  Args:
    logits: `[batch, num_classes]` unnormalised scores.
    labels: `[batch]` integer class ids.
    label_smoothing: mass moved from the label to the uniform distribution.

  Returns:
    `[batch]` losses, `-sum_k target_k log softmax(logits)_k`.
  """
  _check_scores_and_labels(logits, labels)
  if not label_smoothing:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def crammer_singer_hinge(scores: jax.Array, labels: jax.Array, *, margin: float = 1.0) -> jax.Array:
  """Multiclass hinge loss of Crammer & Singer.

  `max(0, margin + max_{j != y} s_j - s_y)`: the true class must beat the best
  wrong class by `margin`.

  References:
    Crammer & Singer, "On the Algorithmic Implementation of Multiclass
    Kernel-based Vector Machines", JMLR 2001.

  Args:
    scores: `[batch, num_classes]` decision values.
    labels: `[batch]` integer class ids.
    margin: the required gap between the true and the best wrong class.

  Returns:
    `[batch]` losses.
  """
  _check_scores_and_labels(scores, labels)
  num_classes = scores.shape[-1]
  is_true = jax.nn.one_hot(labels, num_classes, dtype=bool)
  true_score = jnp.sum(jnp.where(is_true, scores, 0.0), axis=-1)
  best_wrong = jnp.max(jnp.where(is_true, -jnp.inf, scores), axis=-1)
  return jax.nn.relu(margin + best_wrong - true_score)


def one_vs_rest_hinge(scores: jax.Array, labels: jax.Array, *, margin: float = 1.0) -> jax.Array:
  """One-vs-rest hinge loss: one binary SVM per class, summed over classes.

  Class `k` sees target `t_k = +1` for its own examples and `-1` otherwise,
  and pays `max(0, margin - t_k s_k)`. This is what scikit-learn's
  `LinearSVC(loss="hinge", multi_class="ovr")` minimises, class by class.

  Args:
    scores: `[batch, num_classes]` decision values.
    labels: `[batch]` integer class ids.
    margin: the functional margin each binary classifier must reach.

  Returns:
    `[batch]` losses, summed over the binary problems.
  """
  _check_scores_and_labels(scores, labels)
  targets = 2.0 * jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype) - 1.0
  return jnp.sum(jax.nn.relu(margin - targets * scores), axis=-1)


def l2_penalty(params, *, exclude_biases: bool = True) -> jax.Array:
  """`0.5 * sum(w**2)` over the parameters (kernels only by default)."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  total = jnp.zeros((), jnp.float32)
  for path, leaf in leaves:
    name = str(getattr(path[-1], "key", path[-1]))
    if exclude_biases and name in ("bias", "scale"):
      continue
    total = total + 0.5 * jnp.sum(jnp.square(leaf.astype(jnp.float32)))
  return total


CLASSIFICATION_LOSSES = {
  "cross_entropy": softmax_cross_entropy,
  "crammer_singer_hinge": crammer_singer_hinge,
  "one_vs_rest_hinge": one_vs_rest_hinge,
}


def get_classification_loss(name: str):
  """Looks a classification loss up by its config name."""
  from gdjax.errors import ConfigError

  try:
    return CLASSIFICATION_LOSSES[name]
  except KeyError:
    raise ConfigError(f"Unknown loss {name!r}. Set --config.loss to one of {sorted(CLASSIFICATION_LOSSES)}.") from None


def _check_scores_and_labels(scores: jax.Array, labels: jax.Array) -> None:
  if scores.ndim != 2 or labels.shape != scores.shape[:1]:
    raise ValueError(
      "Expected scores of shape [batch, num_classes] and labels of shape "
      f"[batch]; got {scores.shape} and {labels.shape}."
    )
