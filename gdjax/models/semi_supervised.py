"""The discriminator of a semi-supervised GAN: K class logits, and the features the generator matches.

Salimans et al.'s discriminator is a K-class classifier whose "real" score is
the logsumexp of its logits (the K+1-class softmax with the fake logit fixed
at zero; `gdjax.semi_supervised_losses`). The generator learns by matching
the mean of an intermediate layer's activations on real and generated images
(feature matching), so the module returns those activations beside the
logits.

Two bodies:
- "mlp": Salimans et al.'s MNIST discriminator: dense layers of 1000, 500,
  250, 250 and 250 ReLU units, each input perturbed by Gaussian noise
  (standard deviation 0.3 on the pixels, 0.5 on hidden activations) in
  training, weight normalisation on every layer; the features are the last
  hidden layer's activations.
- "conv": a small all-convolutional net in the spirit of their CIFAR-10
  discriminator (dropout on the input and between stages, strided
  convolutions, a 1x1 convolution and global average pooling), sized for
  28x28 images; the features are the pooled activations.

References:
  Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen, "Improved Techniques
  for Training GANs", NeurIPS 2016 (Sections 3.1 and 5; their code's
  `train_mnist_feature_matching.py` fixes the layer sizes and noise levels).
  Salimans & Kingma, "Weight Normalization", NeurIPS 2016.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdjax.models.layers import Conv


class GaussianNoise(nn.Module):
  """Adds N(0, stddev^2) noise in training (from the "noise" rng); the identity in inference."""

  stddev: float

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if not train or self.stddev == 0:
      return x
    return x + self.stddev * jax.random.normal(self.make_rng("noise"), x.shape, x.dtype)


class SemiSupervisedDiscriminator(nn.Module):
  """images `[batch, 28, 28, 1]` in [-1, 1] -> (class logits `[batch, K]`, features `[batch, F]`)."""

  kind: str = "mlp"  # "mlp" (Salimans et al.'s MNIST net) or "conv".
  hidden_sizes: Sequence[int] = (1000, 500, 250, 250, 250)  # "mlp" only.
  input_noise: float = 0.3  # "mlp": Gaussian noise on the pixels ([0, 1] scale, as the paper's).
  hidden_noise: float = 0.5  # "mlp": Gaussian noise on each hidden layer's output.
  weight_norm: bool = True
  width: int = 64  # "conv": channels of the first stage; the second has twice as many.
  input_dropout: float = 0.2  # "conv".
  dropout: float = 0.5  # "conv": between stages.
  num_classes: int = 10
  dtype: Any = jnp.float32  # Computation dtype; parameters, logits and features stay float32.

  def _layer(self, layer: nn.Module) -> nn.Module:
    return nn.WeightNorm(layer) if self.weight_norm else layer

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    if self.kind == "mlp":
      features = self._mlp(images, train)
    elif self.kind == "conv":
      features = self._conv(images, train)
    else:
      raise ValueError(f"SemiSupervisedDiscriminator: kind must be 'mlp' or 'conv', not {self.kind!r}.")
    logits = self._layer(nn.Dense(self.num_classes, dtype=self.dtype))(features)
    return logits.astype(jnp.float32), features.astype(jnp.float32)

  def _mlp(self, images, train):
    # The paper's net sees pixels in [0, 1]; its noise levels are in those units.
    x = ((images.reshape(images.shape[0], -1) + 1.0) / 2.0).astype(self.dtype)
    x = GaussianNoise(self.input_noise)(x, train=train)
    for index, width in enumerate(self.hidden_sizes):
      x = nn.relu(self._layer(nn.Dense(width, dtype=self.dtype))(x))
      if index < len(self.hidden_sizes) - 1:
        x = GaussianNoise(self.hidden_noise)(x, train=train)
    return x  # The last hidden layer, before its noise: what feature matching matches.

  def _conv(self, images, train):
    x = nn.Dropout(self.input_dropout, deterministic=not train)(images.astype(self.dtype))
    for features in (self.width, 2 * self.width):
      x = nn.leaky_relu(self._layer(nn.Conv(features, (3, 3), dtype=self.dtype))(x), 0.2)
      x = nn.leaky_relu(self._layer(Conv(features, (3, 3), strides=(2, 2), dtype=self.dtype))(x), 0.2)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.leaky_relu(self._layer(nn.Conv(2 * self.width, (3, 3), padding="VALID", dtype=self.dtype))(x), 0.2)
    x = nn.leaky_relu(self._layer(nn.Conv(2 * self.width, (1, 1), dtype=self.dtype))(x), 0.2)
    return jnp.mean(x, axis=(1, 2))
