"""uint8 conversion and PNG grids."""

import numpy as np
from PIL import Image

from gdjax import samples


def test_to_float_maps_uint8_to_symmetric_range_and_leaves_floats():
  pixels = np.array([0, 127, 255], np.uint8)
  np.testing.assert_allclose(samples.to_float(pixels), [-1.0, 127 / 127.5 - 1, 1.0], atol=1e-6)
  floats = np.array([0.25], np.float32)
  assert samples.to_float(floats) is floats
  np.testing.assert_array_equal(samples.to_uint8(samples.to_float(np.arange(256, dtype=np.uint8))), np.arange(256))


def test_to_uint8_maps_the_range_and_rounds():
  x = np.array([-1.0, -0.99, 0.0, 1.0, 1.5, -2.0])
  np.testing.assert_array_equal(samples.to_uint8(x), [0, 1, 128, 255, 255, 0])


def test_grid_places_images_row_by_row_and_png_round_trips(tmp_path):
  images = np.stack([np.full((3, 4, 1), 10 * (i + 1), np.uint8) for i in range(5)])
  grid = samples.image_grid(images, columns=2, padding=1)
  assert grid.shape == (3 * (3 + 1) + 1, 2 * (4 + 1) + 1, 1)
  assert grid[1, 1, 0] == 10 and grid[1, 6, 0] == 20 and grid[5, 1, 0] == 30 and grid[9, 1, 0] == 50
  assert grid[9, 6, 0] == 0  # The sixth cell is empty.
  path = samples.save_image_grid(images, tmp_path / "g.png", columns=2, scale=1)
  picture = np.asarray(Image.open(path))
  np.testing.assert_array_equal(picture, samples.image_grid(images, columns=2)[..., 0])
