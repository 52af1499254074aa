"""DiffAugment's ops against NumPy re-implementations of the paper's code, given the same drawn numbers.

The NumPy versions follow `DiffAugment_pytorch.py` (Zhao et al., NeurIPS 2020)
line by line: translation reads a one-pixel zero border through clamped
indices, cutout zeroes a clamped grid of indices, where the JAX versions use
masks. Images are non-square with three channels, so rows, columns and
channels cannot be mixed up unnoticed.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdjax import diff_augment
from gdjax.errors import ConfigError

SHAPE = (64, 12, 10, 3)  # Translation: up to 2 rows, 1 column. Cutout: 6 rows by 5 columns.


def images(seed=0, shape=SHAPE):
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def numpy_color(x, brightness, saturation, contrast):
  x = x.astype(np.float64) + brightness[:, None, None, None]
  channel_mean = x.mean(axis=3, keepdims=True)
  x = (x - channel_mean) * saturation[:, None, None, None] + channel_mean
  image_mean = x.mean(axis=(1, 2, 3), keepdims=True)
  return (x - image_mean) * contrast[:, None, None, None] + image_mean


def numpy_translate(x, shifts):
  _, height, width, _ = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.empty_like(x)
  for k, (row_shift, column_shift) in enumerate(shifts):
    rows = np.clip(np.arange(height) + row_shift + 1, 0, height + 1)
    columns = np.clip(np.arange(width) + column_shift + 1, 0, width + 1)
    out[k] = padded[k][rows][:, columns]
  return out


def numpy_cutout(x, centres, side_rows, side_columns):
  _, height, width, _ = x.shape
  mask = np.ones(x.shape[:3], x.dtype)
  for k, (row, column) in enumerate(centres):
    rows = np.clip(np.arange(side_rows) + row - side_rows // 2, 0, height - 1)
    columns = np.clip(np.arange(side_columns) + column - side_columns // 2, 0, width - 1)
    mask[k][np.ix_(rows, columns)] = 0
  return x * mask[..., None]


def test_color_is_the_papers_brightness_saturation_contrast():
  x, key = images(), jax.random.key(0)
  draw = jax.device_get(diff_augment.draw_color(key, SHAPE[0]))
  assert np.all((-0.5 <= draw.brightness) & (draw.brightness < 0.5))
  assert np.all((0.0 <= draw.saturation) & (draw.saturation < 2.0))
  assert np.all((0.5 <= draw.contrast) & (draw.contrast < 1.5))
  assert np.std(draw.saturation) > 0.3  # One draw per image, not one per batch.
  out = jax.jit(diff_augment.random_color)(key, x)
  np.testing.assert_allclose(out, numpy_color(x, *draw), rtol=1e-5, atol=1e-5)
  # Saturation and contrast keep the image's mean: only brightness moves it.
  np.testing.assert_allclose(np.mean(out, axis=(1, 2, 3)), np.mean(x, axis=(1, 2, 3)) + draw.brightness, atol=1e-5)


def test_saturation_leaves_a_single_channel_alone():
  x = images(shape=(8, 6, 6, 1))
  draw = diff_augment.ColorDraw(np.zeros(8, np.float32), np.full(8, 1.7, np.float32), np.ones(8, np.float32))
  np.testing.assert_allclose(diff_augment.adjust_color(x, draw), x, atol=1e-6)


def test_translation_is_the_papers_zero_padded_integer_shift():
  x, key = images(1), jax.random.key(1)
  shifts = np.asarray(diff_augment.draw_translation(key, SHAPE))
  assert shifts.shape == (SHAPE[0], 2) and shifts.dtype.kind == "i"
  assert set(shifts[:, 0]) == set(range(-2, 3)) and set(shifts[:, 1]) == set(range(-1, 2))  # round(12/8), round(10/8).
  out = jax.jit(diff_augment.random_translation)(key, x)
  np.testing.assert_array_equal(out, numpy_translate(x, shifts))


def test_translation_by_an_eighth_of_28_pixels_is_up_to_4():
  shifts = np.asarray(diff_augment.draw_translation(jax.random.key(2), (512, 28, 28, 1)))
  assert shifts.min() == -4 and shifts.max() == 4


def test_cutout_is_the_papers_clipped_square_of_half_the_size():
  x, key = images(2), jax.random.key(3)
  centres = np.asarray(diff_augment.draw_cutout(key, SHAPE))
  # Sides 6 (even: centres up to the far edge, 12) and 5 (odd: up to 9).
  assert set(centres[:, 0]) <= set(range(13)) and centres[:, 0].max() == 12 and centres[:, 0].min() == 0
  assert set(centres[:, 1]) <= set(range(10)) and centres[:, 1].max() == 9 and centres[:, 1].min() == 0
  out = jax.jit(diff_augment.random_cutout)(key, x)
  np.testing.assert_array_equal(out, numpy_cutout(x, centres, 6, 5))
  assert diff_augment.scaled_size(28, 0.5) == 14


def test_translation_and_cutout_only_move_or_zero_pixels():
  x = images(3)
  for op in (diff_augment.random_translation, diff_augment.random_cutout):
    out = np.asarray(op(jax.random.key(4), x))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.all(np.abs(out) <= 1.0)
    for image, augmented in zip(x, out):
      for channel in range(3):
        values = set(image[..., channel].ravel()) | {0.0}
        assert set(augmented[..., channel].ravel()) <= values


@pytest.mark.parametrize("op", ["random_color", "random_translation", "random_cutout"])
def test_gradients_flow_and_are_the_adjoint(op):
  """Each op is affine in the images, so <grad of <f(x), w>, v> = <f(x + v) - f(x), w> exactly."""
  fn = functools.partial(getattr(diff_augment, op), jax.random.key(5))
  x, v = images(4), images(5)
  w = np.random.default_rng(6).normal(size=SHAPE).astype(np.float32)
  grad = np.asarray(jax.grad(lambda x: jnp.sum(fn(x) * w))(x))
  assert np.count_nonzero(grad) > grad.size // 2
  expected = np.sum((np.asarray(fn(x + v), np.float64) - np.asarray(fn(x), np.float64)) * w)
  np.testing.assert_allclose(np.sum(grad.astype(np.float64) * v), expected, rtol=1e-4)


def test_a_policy_applies_its_ops_in_order_with_folded_keys():
  x, key = images(7), jax.random.key(8)
  augment = jax.jit(functools.partial(diff_augment.augment, policy="color,translation,cutout"))
  expected = diff_augment.random_color(jax.random.fold_in(key, 0), x)
  expected = diff_augment.random_translation(jax.random.fold_in(key, 1), expected)
  expected = diff_augment.random_cutout(jax.random.fold_in(key, 2), expected)
  np.testing.assert_allclose(augment(key, x), expected, rtol=1e-6, atol=1e-6)
  assert diff_augment.parse_policy(" translation , cutout") == ("translation", "cutout")


def test_a_policy_with_an_unknown_op_is_refused_with_the_known_ones():
  with pytest.raises(
    ConfigError, match=r"Unknown DiffAugment op\(s\) \['zoom'\].*\['color', 'translation', 'cutout'\]"
  ):
    diff_augment.parse_policy("color,zoom")
  with pytest.raises(ConfigError, match="names no op"):
    diff_augment.parse_policy(" , ")
