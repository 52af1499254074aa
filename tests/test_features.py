"""The feature transforms naive Bayes and logistic regression share, against NumPy's formulas."""

import jax
import numpy as np
import pytest

from gdjax import features, samples

PIXELS = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)  # Every value a uint8 pixel can take.


def test_binarized_is_pixel_over_255_above_one_half_for_every_pixel_value():
  got = jax.jit(lambda x: features.transform("binarized", x))(PIXELS)
  np.testing.assert_array_equal(got, (PIXELS.astype(np.float64) / 255 > 0.5).astype(np.float32))
  assert got.dtype == np.float32 and got.shape == PIXELS.shape


def test_intensity_is_pixel_over_255():
  got = jax.jit(lambda x: features.transform("intensity", x))(PIXELS)
  np.testing.assert_allclose(got, PIXELS.astype(np.float64) / 255, rtol=1e-7)


def test_pixels_are_exactly_what_classifiers_always_saw():
  got = jax.jit(lambda x: features.transform("pixels", x))(PIXELS)
  np.testing.assert_array_equal(got, jax.jit(samples.to_float)(PIXELS))
  np.testing.assert_allclose(got, PIXELS.astype(np.float64) / 127.5 - 1, atol=1e-6)


def test_counts_are_the_values_as_float32():
  counts = np.array([[0, 3, 1], [7, 0, 2]], np.float32)
  np.testing.assert_array_equal(jax.jit(lambda x: features.transform("counts", x))(counts), counts)


def test_unknown_name_and_non_pixel_inputs_are_explained():
  with pytest.raises(ValueError, match=r"Unknown features 'binary'.*one of \('pixels'"):
    features.transform("binary", PIXELS)
  with pytest.raises(ValueError, match="take uint8 pixels; got float32. Use features='counts'"):
    features.transform("binarized", PIXELS.astype(np.float32))
