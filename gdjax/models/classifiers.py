"""Discriminative models: a linear SVM, an MLP and a CNN.

Each takes images `[batch, height, width, channels]` scaled to [-1, 1] and
returns unnormalised class scores `[batch, num_classes]`. Which loss turns
scores into a training signal (hinge for the SVM, cross-entropy for the
others) is the config's choice, not the model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdjax.models import layers


class LinearClassifier(nn.Module):
  """`scores = W x + b` on the flattened pixels.

  Trained with a hinge loss and an L2 penalty on `W` it is a linear SVM
  (Crammer-Singer or one-vs-rest, depending on the loss).
  """

  num_classes: int = 10
  dtype: Any = jnp.float32  # Computation dtype; parameters and scores stay float32.

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # A linear model behaves the same in training and inference.
    features = images.reshape(images.shape[0], -1)
    scores = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, dtype=self.dtype)(features)
    return scores.astype(jnp.float32)


class MLPClassifier(nn.Module):
  """Fully connected ReLU network with dropout between the hidden layers."""

  hidden_sizes: Sequence[int] = (256, 128, 100)
  num_classes: int = 10
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32  # Computation dtype; parameters and scores stay float32.

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
    x = images.reshape(images.shape[0], -1)
    for width in self.hidden_sizes:
      x = nn.relu(nn.Dense(width, dtype=self.dtype)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class CNNClassifier(nn.Module):
  """VGG-style CNN: stages of 3x3 conv-BN-ReLU blocks, each ending in 2x2 max-pool.

  Attributes:
    stage_widths: output channels of each stage's convolutions.
    convs_per_stage: how many 3x3 convolutions each stage stacks.
    dense_width: width of the hidden dense layer before the classifier.
    dropout_rate: dropout before the hidden and the output dense layers.
    use_batch_norm: batch norm after every convolution.
    dtype: computation dtype (float32 or bfloat16); parameters, batch-norm
      statistics, scores and features stay float32.
  """

  stage_widths: Sequence[int] = (32, 64)
  convs_per_stage: int = 2
  dense_width: int = 256
  num_classes: int = 10
  dropout_rate: float = 0.0
  use_batch_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool = False, with_features: bool = False):
    """Class scores; with `with_features`, also the hidden dense layer's activations.

    Those activations are the feature space in which gdjax's FID, KID and
    precision/recall compare generated with real images.
    """
    x = images
    for width in self.stage_widths:
      for _ in range(self.convs_per_stage):
        x = nn.Conv(width, (3, 3), use_bias=not self.use_batch_norm, dtype=self.dtype)(x)
        if self.use_batch_norm:
          x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
        x = nn.relu(x)
      x = layers.max_pool_2x2(x)
    x = x.reshape(x.shape[0], -1)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    features = nn.relu(nn.Dense(self.dense_width, dtype=self.dtype)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    scores = nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
    return (scores, features.astype(jnp.float32)) if with_features else scores


def count_parameters(params) -> int:
  return sum(int(jnp.size(p)) for p in jax.tree.leaves(params))
