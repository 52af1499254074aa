"""DiffAugment: random, differentiable colour, translation and cutout of a batch of images.

Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient GAN
Training", NeurIPS 2020 (arXiv:2006.10738). The discriminator sees every
image, real and generated, in its own update and in the generator's, through
the same kind of random transformation; since the transformations are
differentiable in the images, the generator's gradient passes through them.
`gdjax/gan_regularizers.py`'s `DiffAugment` applies them through the GAN
task's `augment` hook.

The ops follow the paper's code (`DiffAugment_pytorch.py`), which also works
on images in [-1, 1], with one draw per image:
- "color": brightness adds b ~ U(-0.5, 0.5) to every pixel; then saturation
  scales each pixel's channels around their mean by s ~ U(0, 2) (the identity
  on one channel); then contrast scales the image around its mean over all
  pixels and channels by c ~ U(0.5, 1.5);
- "translation": shifts the image by a whole number of pixels, drawn uniformly
  in [-m, m] for rows and for columns independently, m = round(ratio * size)
  (ratio 1/8: 4 pixels of 28 or 32); pixels shifted in are 0;
- "cutout": sets to 0 a square of round(ratio * size) pixels a side (ratio
  1/2: 14 of 28), at a random position: its centre row (column) is uniform
  in [0, size] for an even side, [0, size - 1] for an odd one, and the square
  is clipped at the border.
(round(v) is int(v + 0.5) as in that code.) Every op is `(rng, images[B, H,
W, C]) -> images`, jittable and differentiable in `images`. Its random draws
come from a `draw_*` function of the same key, so a test can redo the op from
the drawn numbers; `augment` gives op `i` of the policy the key
`fold_in(rng, i)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gdjax.errors import ConfigError

OPS = ("color", "translation", "cutout")  # What a policy may name, in the paper's order.


def parse_policy(policy: str) -> tuple[str, ...]:
  """`"color, translation"` -> `("color", "translation")`; refuses unknown names and an empty policy."""
  names = tuple(name.strip() for name in (policy or "").split(",") if name.strip())
  unknown = [name for name in names if name not in OPS]
  if unknown:
    raise ConfigError(
      f"Unknown DiffAugment op(s) {unknown} in policy {policy!r}. "
      f"A policy is a comma-separated list of {list(OPS)}, e.g. 'color,translation,cutout'."
    )
  if not names:
    raise ConfigError(
      f"The DiffAugment policy {policy!r} names no op, so it would augment nothing. Name some of {list(OPS)}, "
      "or leave 'diffaugment' out of --config.regularizers."
    )
  return names


def scaled_size(size: int, ratio: float) -> int:
  """`ratio * size` rounded half up, as the paper's code sizes shifts and cutouts."""
  return int(size * ratio + 0.5)


# --- Colour.


class ColorDraw(NamedTuple):
  """One image's colour change per entry: `[batch]` each."""

  brightness: jax.Array  # Added: U(-0.5, 0.5).
  saturation: jax.Array  # Factor around each pixel's channel mean: U(0, 2).
  contrast: jax.Array  # Factor around the image's mean: U(0.5, 1.5).


def draw_color(rng: jax.Array, batch: int) -> ColorDraw:
  brightness_rng, saturation_rng, contrast_rng = jax.random.split(rng, 3)
  return ColorDraw(
    brightness=jax.random.uniform(brightness_rng, (batch,), minval=-0.5, maxval=0.5),
    saturation=jax.random.uniform(saturation_rng, (batch,), minval=0.0, maxval=2.0),
    contrast=jax.random.uniform(contrast_rng, (batch,), minval=0.5, maxval=1.5),
  )


def adjust_color(images: jax.Array, draw: ColorDraw) -> jax.Array:
  """Brightness, then saturation, then contrast, each image by its own `draw` entry."""

  def per_image(values):
    return values.astype(images.dtype)[:, None, None, None]

  images = images + per_image(draw.brightness)
  channel_mean = jnp.mean(images, axis=3, keepdims=True)
  images = (images - channel_mean) * per_image(draw.saturation) + channel_mean
  image_mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
  return (images - image_mean) * per_image(draw.contrast) + image_mean


def random_color(rng: jax.Array, images: jax.Array) -> jax.Array:
  return adjust_color(images, draw_color(rng, images.shape[0]))


# --- Translation.


def draw_translation(rng: jax.Array, image_shape: Sequence[int], ratio: float = 0.125) -> jax.Array:
  """`[batch, 2]` (row, column) shifts of `image_shape` `[B, H, W, C]`: uniform integers in [-m, m]."""
  batch, height, width = image_shape[:3]
  row_rng, column_rng = jax.random.split(rng)
  max_rows, max_columns = scaled_size(height, ratio), scaled_size(width, ratio)
  return jnp.stack(
    [
      jax.random.randint(row_rng, (batch,), -max_rows, max_rows + 1),
      jax.random.randint(column_rng, (batch,), -max_columns, max_columns + 1),
    ],
    axis=1,
  )


def translate(images: jax.Array, shifts: jax.Array) -> jax.Array:
  """`out[b, i, j] = images[b, i + shifts[b, 0], j + shifts[b, 1]]`, and 0 where that is outside the image."""
  _, height, width, _ = images.shape
  rows = jnp.arange(height)[None, :] + shifts[:, :1]  # [batch, height]
  columns = jnp.arange(width)[None, :] + shifts[:, 1:]  # [batch, width]
  inside = ((rows >= 0) & (rows < height))[:, :, None] & ((columns >= 0) & (columns < width))[:, None, :]
  gathered = jnp.take_along_axis(images, jnp.clip(rows, 0, height - 1)[:, :, None, None], axis=1)
  gathered = jnp.take_along_axis(gathered, jnp.clip(columns, 0, width - 1)[:, None, :, None], axis=2)
  return jnp.where(inside[..., None], gathered, jnp.zeros((), images.dtype))


def random_translation(rng: jax.Array, images: jax.Array, ratio: float = 0.125) -> jax.Array:
  return translate(images, draw_translation(rng, images.shape, ratio))


# --- Cutout.


def draw_cutout(rng: jax.Array, image_shape: Sequence[int], ratio: float = 0.5) -> jax.Array:
  """`[batch, 2]` (row, column) centres of the cut squares in an image of `image_shape` `[B, H, W, C]`."""
  batch, height, width = image_shape[:3]
  row_rng, column_rng = jax.random.split(rng)
  # The paper's code draws from [0, size + 1 - side % 2): up to the far edge itself for an even side.
  row_limit = height + 1 - scaled_size(height, ratio) % 2
  column_limit = width + 1 - scaled_size(width, ratio) % 2
  return jnp.stack(
    [jax.random.randint(row_rng, (batch,), 0, row_limit), jax.random.randint(column_rng, (batch,), 0, column_limit)],
    axis=1,
  )


def cut_out(images: jax.Array, centres: jax.Array, ratio: float = 0.5) -> jax.Array:
  """Zeroes each image's square of side `round(ratio * size)` covering rows `[c - side // 2, c - side // 2 + side)`."""
  _, height, width, _ = images.shape
  side_rows, side_columns = scaled_size(height, ratio), scaled_size(width, ratio)
  first_row = centres[:, :1] - side_rows // 2  # [batch, 1]
  first_column = centres[:, 1:] - side_columns // 2
  rows, columns = jnp.arange(height)[None, :], jnp.arange(width)[None, :]
  in_rows = (rows >= first_row) & (rows < first_row + side_rows)  # [batch, height]
  in_columns = (columns >= first_column) & (columns < first_column + side_columns)  # [batch, width]
  cut = in_rows[:, :, None] & in_columns[:, None, :]
  return jnp.where(cut[..., None], jnp.zeros((), images.dtype), images)


def random_cutout(rng: jax.Array, images: jax.Array, ratio: float = 0.5) -> jax.Array:
  return cut_out(images, draw_cutout(rng, images.shape, ratio), ratio)


# --- A policy.


def augment(
  rng: jax.Array,
  images: jax.Array,
  policy: str | Sequence[str],
  *,
  translation_ratio: float = 0.125,
  cutout_ratio: float = 0.5,
) -> jax.Array:
  """The ops of `policy` in its order, op `i` drawing from `fold_in(rng, i)`."""
  names = parse_policy(policy) if isinstance(policy, str) else tuple(policy)
  for index, name in enumerate(names):
    op_rng = jax.random.fold_in(rng, index)
    if name == "color":
      images = random_color(op_rng, images)
    elif name == "translation":
      images = random_translation(op_rng, images, translation_ratio)
    elif name == "cutout":
      images = random_cutout(op_rng, images, cutout_ratio)
    else:
      parse_policy(name)  # Raises, naming the known ops.
  return images
