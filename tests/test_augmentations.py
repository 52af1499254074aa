"""Augmentations against NumPy re-implementations."""

import jax
import numpy as np

from gdjax import augmentations


def test_flip_mirrors_exactly_the_chosen_images():
  images = np.random.default_rng(0).normal(size=(64, 5, 7, 1)).astype(np.float32)
  out = np.asarray(jax.jit(augmentations.random_flip_left_right)(jax.random.key(0), images))
  flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)])
  kept = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
  assert np.all(flipped ^ kept)
  assert 16 < flipped.sum() < 48  # About half.


def test_translate_is_a_shift_with_fill():
  images = np.random.default_rng(1).uniform(0, 1, (32, 6, 6, 1)).astype(np.float32)
  out = np.asarray(augmentations.random_translate(jax.random.key(3), images, max_shift=2, fill=-1.0))
  for image, shifted in zip(images, out):
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)), constant_values=-1.0)
    candidates = [padded[dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
    assert any(np.array_equal(shifted, c) for c in candidates)


def test_same_key_same_augmentation():
  images = np.random.default_rng(2).normal(size=(8, 28, 28, 1)).astype(np.float32)
  a = augmentations.augment(jax.random.key(5), images, flip=True, max_shift=2)
  b = augmentations.augment(jax.random.key(5), images, flip=True, max_shift=2)
  np.testing.assert_array_equal(a, b)
