"""Variational autoencoders: a Gaussian encoder q(z|x) and a decoder p(x|z), MLP or convolutional.

`VAE.encode(observations)` returns the mean and log-variance of the diagonal
Gaussian q(z|x); `VAE.decode(latents)` returns the parameters of p(x|z) per
pixel: Bernoulli logits `[batch, 28, 28, 1]` for binarised images, or the
mean and log-scale of a discretised logistic on [-1, 1] for 8-bit images.
The prior p(z) is a standard Gaussian. Observations enter the encoder in
[-1, 1] (a binary pixel as -1 or 1).

References:
  Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
  Salimans et al., "PixelCNN++", ICLR 2017 (the discretised logistic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdjax.models.layers import Conv, ConvTranspose

LIKELIHOODS = ("bernoulli", "logistic")
ARCHITECTURES = ("mlp", "conv")


class VAE(nn.Module):
  """An encoder-decoder pair; `architecture` "mlp" (dense layers) or "conv" (two strided convolutions each way).

  Attributes:
    latent_dim: dimension of z.
    hidden_sizes: widths of the MLP's hidden layers (the decoder mirrors them);
      for "conv", the channels of the two convolutions.
    likelihood: "bernoulli" (binarised images) or "logistic" (8-bit images,
      discretised logistic with a learned log-scale per pixel).
    image_shape: the observations' shape.
    dtype: computation dtype; parameters and outputs stay float32.
  """

  latent_dim: int = 32
  hidden_sizes: Sequence[int] = (512, 256)
  architecture: str = "mlp"
  likelihood: str = "bernoulli"
  image_shape: Sequence[int] = (28, 28, 1)
  dtype: Any = jnp.float32

  def setup(self):
    if self.architecture not in ARCHITECTURES or self.likelihood not in LIKELIHOODS:
      raise ValueError(
        f"VAE architecture must be one of {ARCHITECTURES} and likelihood one of {LIKELIHOODS}; "
        f"got {self.architecture!r}, {self.likelihood!r}."
      )
    channels = self.image_shape[-1] * (2 if self.likelihood == "logistic" else 1)
    if self.architecture == "mlp":
      self.encoder = _MLP(tuple(self.hidden_sizes), 2 * self.latent_dim, self.dtype)
      self.decoder = _MLP(tuple(reversed(self.hidden_sizes)), math.prod(self.image_shape[:-1]) * channels, self.dtype)
    else:
      self.encoder = _ConvEncoder(tuple(self.hidden_sizes), 2 * self.latent_dim, self.dtype)
      self.decoder = _ConvDecoder(tuple(self.hidden_sizes), tuple(self.image_shape[:-1]), channels, self.dtype)

  def encode(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and log-variance of q(z|x), each `[batch, latent_dim]`."""
    statistics = self.encoder(observations.astype(self.dtype)).astype(jnp.float32)
    mean, log_variance = jnp.split(statistics, 2, axis=-1)
    return mean, log_variance

  def decode(self, latents: jax.Array) -> dict[str, jax.Array]:
    """p(x|z)'s parameters: `{"logits"}` (Bernoulli) or `{"mean", "log_scale"}` (logistic), `[batch, *image_shape]`."""
    outputs = self.decoder(latents.astype(self.dtype)).astype(jnp.float32)
    outputs = outputs.reshape(latents.shape[0], *self.image_shape[:-1], -1)
    if self.likelihood == "bernoulli":
      return {"logits": outputs}
    mean, log_scale = jnp.split(outputs, 2, axis=-1)
    return {"mean": jnp.tanh(mean), "log_scale": jnp.maximum(log_scale, -7.0)}

  def __call__(self, observations: jax.Array) -> dict[str, jax.Array]:
    """Decodes the encoder's means (used to create the parameters)."""
    mean, _ = self.encode(observations)
    return self.decode(mean)


class _MLP(nn.Module):
  hidden_sizes: tuple[int, ...]
  outputs: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    for width in self.hidden_sizes:
      x = nn.gelu(nn.Dense(width, dtype=self.dtype)(x))
    return nn.Dense(self.outputs, dtype=self.dtype)(x)


class _ConvEncoder(nn.Module):
  channels: tuple[int, ...]
  outputs: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    for features in self.channels[:2]:
      x = nn.gelu(Conv(features, (4, 4), strides=(2, 2), dtype=self.dtype)(x))
    x = x.reshape(x.shape[0], -1)
    x = nn.gelu(nn.Dense(256, dtype=self.dtype)(x))
    return nn.Dense(self.outputs, dtype=self.dtype)(x)


class _ConvDecoder(nn.Module):
  channels: tuple[int, ...]
  spatial: tuple[int, int]
  outputs: int
  dtype: Any

  @nn.compact
  def __call__(self, z):
    height, width = self.spatial[0] // 4, self.spatial[1] // 4
    x = nn.gelu(nn.Dense(256, dtype=self.dtype)(z))
    x = nn.gelu(nn.Dense(height * width * self.channels[1], dtype=self.dtype)(x))
    x = x.reshape(z.shape[0], height, width, self.channels[1])
    x = nn.gelu(ConvTranspose(self.channels[0], dtype=self.dtype)(x))
    return ConvTranspose(self.outputs, dtype=self.dtype)(x)
