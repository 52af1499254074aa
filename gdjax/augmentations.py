"""Random image augmentations in JAX, drawn from the step's key.

They run inside the jitted train step, so they cost no host time and a resumed
run draws exactly the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_flip_left_right(rng: jax.Array, images: jax.Array) -> jax.Array:
  """Mirrors each image of `[batch, h, w, c]` with probability 1/2."""
  flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def random_translate(rng: jax.Array, images: jax.Array, max_shift: int, fill: float = -1.0) -> jax.Array:
  """Shifts each image by up to `max_shift` pixels in each direction.

  Pixels shifted in take the value `fill` (-1 is black in [-1, 1] scaling).
  """
  if max_shift <= 0:
    return images
  batch, height, width, _ = images.shape
  padded = jnp.pad(
    images,
    ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)),
    constant_values=fill,
  )
  offsets = jax.random.randint(rng, (batch, 2), 0, 2 * max_shift + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, image.shape[-1]))

  return jax.vmap(crop)(padded, offsets)


def augment(rng: jax.Array, images: jax.Array, *, flip: bool, max_shift: int) -> jax.Array:
  flip_rng, shift_rng = jax.random.split(rng)
  if flip:
    images = random_flip_left_right(flip_rng, images)
  return random_translate(shift_rng, images, max_shift)
