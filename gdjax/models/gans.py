"""Generators and discriminators: the MLP GAN, DCGAN and their conditional forms.

Generators map noise `[batch, noise_dim]` (and, if conditional, labels
`[batch]`) to images in [-1, 1], shaped `[batch, 28, 28, 1]`. Discriminators map images (and labels) to one raw score
per example, `[batch]`; the adversarial loss decides how to read it.

Conditioning follows the usual pair: the generator concatenates a learned
label embedding to the noise, and the discriminator adds the projection term
`<embed(y), phi(x)>` to its unconditional score (Miyato & Koyama 2018).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdjax.models.layers import Conv, ConvTranspose

# Both map to [-1, 1], the range of the real images: "sigmoid" is the
# original GAN paper's output unit, rescaled as 2 * sigmoid(x) - 1.
OUTPUT_ACTIVATIONS = {"tanh": jnp.tanh, "sigmoid": lambda x: 2.0 * jax.nn.sigmoid(x) - 1.0}


def _maybe_spectral_norm(layer: nn.Module, enabled: bool, x: jax.Array, train: bool) -> jax.Array:
  """Applies `layer`, with its kernel divided by its spectral norm if `enabled`.

  Spectral norm keeps its power-iteration vector in the `batch_stats`
  collection, which is updated only in training.

  References:
    Miyato et al., "Spectral Normalization for Generative Adversarial
    Networks", ICLR 2018.
  """
  if enabled:
    return nn.SpectralNorm(layer, collection_name="batch_stats")(x, update_stats=train)
  return layer(x)


class LabelEmbedding(nn.Module):
  num_classes: int
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, labels: jax.Array) -> jax.Array:
    return nn.Embed(self.num_classes, self.features, dtype=self.dtype)(labels)


class MLPGenerator(nn.Module):
  """noise -> hidden (ReLU) -> prod(image_shape), then tanh or sigmoid."""

  hidden_sizes: Sequence[int] = (256,)
  image_shape: Sequence[int] = (28, 28, 1)
  output_activation: str = "tanh"
  use_batch_norm: bool = False
  num_classes: int = 0  # > 0: label-conditioned.
  dtype: Any = jnp.float32  # Computation dtype; parameters and the output stay float32.

  @nn.compact
  def __call__(self, noise: jax.Array, labels: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    x = noise.astype(self.dtype)
    if self.num_classes:
      x = jnp.concatenate([x, LabelEmbedding(self.num_classes, noise.shape[-1], self.dtype)(labels)], axis=-1)
    for width in self.hidden_sizes:
      x = nn.Dense(width, dtype=self.dtype)(x)
      if self.use_batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
      x = nn.relu(x)
    x = nn.Dense(math.prod(self.image_shape), dtype=self.dtype)(x)
    images = OUTPUT_ACTIVATIONS[self.output_activation](x.astype(jnp.float32))
    return images.reshape((noise.shape[0], *self.image_shape))


class MLPDiscriminator(nn.Module):
  """image -> hidden (leaky ReLU 0.2) -> 1 score, with optional projection."""

  hidden_sizes: Sequence[int] = (256,)
  spectral_norm: bool = False
  num_classes: int = 0
  dtype: Any = jnp.float32  # Computation dtype; parameters and scores stay float32.

  @nn.compact
  def __call__(self, images: jax.Array, labels: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    x = images.reshape(images.shape[0], -1).astype(self.dtype)
    for width in self.hidden_sizes:
      x = nn.leaky_relu(_maybe_spectral_norm(nn.Dense(width, dtype=self.dtype), self.spectral_norm, x, train), 0.2)
    return _score_with_projection(x, labels, self.num_classes, self.spectral_norm, train, self.dtype)


class DCGANGenerator(nn.Module):
  """noise -> dense 7x7x(2w) -> ConvTranspose to 14x14xw -> ConvTranspose to 28x28x1, tanh.

  `width` is w (64 in the DCGAN paper's Fashion-MNIST-sized variant).

  References:
    Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep
    Convolutional Generative Adversarial Networks", ICLR 2016.
  """

  width: int = 64
  use_batch_norm: bool = True
  output_channels: int = 1
  num_classes: int = 0
  # How the two transposed convolutions are computed; the parameters and the
  # outputs are the same either way (see gdjax/models/layers.py).
  conv_transpose: str = "auto"
  dtype: Any = jnp.float32  # Computation dtype; parameters and the output stay float32.

  @nn.compact
  def __call__(self, noise: jax.Array, labels: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    def normalize(h):
      if not self.use_batch_norm:
        return h
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(h)

    x = noise.astype(self.dtype)
    if self.num_classes:
      x = jnp.concatenate([x, LabelEmbedding(self.num_classes, noise.shape[-1], self.dtype)(labels)], axis=-1)
    x = nn.relu(normalize(nn.Dense(7 * 7 * 2 * self.width, use_bias=not self.use_batch_norm, dtype=self.dtype)(x)))
    x = x.reshape(x.shape[0], 7, 7, 2 * self.width)
    upsample = functools.partial(
      ConvTranspose, kernel_size=(4, 4), strides=(2, 2), implementation=self.conv_transpose, dtype=self.dtype
    )
    x = nn.relu(normalize(upsample(self.width, use_bias=not self.use_batch_norm)(x)))
    x = upsample(self.output_channels)(x)
    return jnp.tanh(x.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
  """28x28 -> conv 4x4/2 to 14x14xw -> conv 4x4/2 to 7x7x(2w) -> 1 score; leaky ReLU 0.2.

  Normalisers: spectral norm in every layer (`spectral_norm`), or batch norm
  after the second convolution (`use_batch_norm`), as in Radford et al.'s
  DCGAN. With batch norm a score depends on the rest of its batch, so
  penalties on each example's gradient (WGAN-GP, R1) refuse it. In training,
  D normalises real and fake images as two separate batches (as PyTorch's
  DCGAN example does); its running statistics, in `batch_stats`, are used
  only in inference.
  """

  width: int = 64
  spectral_norm: bool = False
  use_batch_norm: bool = False
  num_classes: int = 0
  # How the strided convolutions are computed; the parameters (Flax's `Conv`
  # layout) and the outputs are the same either way (see gdjax/models/layers.py).
  conv: str = "auto"
  dtype: Any = jnp.float32  # Computation dtype; parameters and scores stay float32.

  @nn.compact
  def __call__(self, images: jax.Array, labels: jax.Array | None = None, *, train: bool = False) -> jax.Array:
    if self.spectral_norm and self.use_batch_norm:
      raise ValueError("DCGANDiscriminator: choose spectral_norm or use_batch_norm, not both.")
    x = images.astype(self.dtype)
    for index, features in enumerate((self.width, 2 * self.width)):
      conv = Conv(features, (4, 4), strides=(2, 2), implementation=self.conv, dtype=self.dtype)
      x = _maybe_spectral_norm(conv, self.spectral_norm, x, train)
      if self.use_batch_norm and index == 1:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    x = x.reshape(x.shape[0], -1)
    return _score_with_projection(x, labels, self.num_classes, self.spectral_norm, train, self.dtype)


def _score_with_projection(features, labels, num_classes, spectral_norm, train, dtype):
  """`w . phi(x) + b`, plus `<embed(y), phi(x)>` when conditional; float32 whatever `dtype` computes.

  References:
    Miyato & Koyama, "cGANs with Projection Discriminator", ICLR 2018.
  """
  score = _maybe_spectral_norm(nn.Dense(1, dtype=dtype), spectral_norm, features, train)[:, 0]
  score = score.astype(jnp.float32)
  if num_classes:
    embedding = nn.Embed(num_classes, features.shape[-1], name="projection")(labels)
    score = score + jnp.sum(embedding * features.astype(jnp.float32), axis=-1)
  return score
