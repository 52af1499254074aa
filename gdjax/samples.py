"""Image conversions between uint8 pixels and [-1, 1] floats, and PNG grids (Pillow).

Pipelines hand uint8 images to the device (a quarter of float32's bytes) and
the jitted steps convert them with `to_float`.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image


def to_float(images):
  """uint8 pixels in [0, 255] -> float32 in [-1, 1]; floats are taken as already scaled.

  Works on NumPy and JAX arrays alike, inside jit or not.
  """
  if images.dtype == np.uint8:
    return images.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
  return images


def to_uint8(images) -> np.ndarray:
  """[-1, 1] floats -> [0, 255] uint8 NumPy array, rounding to the nearest level."""
  images = np.asarray(images, np.float32)
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_uint8_on_device(images: jax.Array) -> jax.Array:
  """`to_uint8` in JAX, for jitted inference functions: the same levels, rounding half to even as NumPy does."""
  return jnp.clip(jnp.round((images.astype(jnp.float32) + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def image_grid(images, *, columns: int | None = None, padding: int = 2) -> np.ndarray:
  """Tiles `[N, h, w, c]` uint8 images into one `[H, W, c]` image, row by row."""
  images = np.asarray(images)
  n, height, width, channels = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding, channels), np.uint8)
  for index, image in enumerate(images):
    top = padding + (index // columns) * (height + padding)
    left = padding + (index % columns) * (width + padding)
    grid[top : top + height, left : left + width] = image
  return grid


def save_image_grid(images, path: str | Path, *, columns: int | None = None, scale: int = 2) -> Path:
  """Writes uint8 images as one PNG grid, enlarged `scale` times for viewing."""
  grid = image_grid(images, columns=columns)
  mode = "L" if grid.shape[-1] == 1 else "RGB"
  picture = Image.fromarray(grid[..., 0] if mode == "L" else grid, mode=mode)
  if scale > 1:
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  picture.save(path)
  return path
