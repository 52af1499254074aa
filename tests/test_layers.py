"""gdjax's faster layers equal the Flax layers they stand in for."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdjax.models import gans, layers


def _assert_same_function(gdjax_layer, flax_layer, inputs, expected_shape):
  """Same parameter shapes, outputs and gradients (parameters and inputs) as the Flax layer."""
  variables = flax_layer.init(jax.random.key(1), inputs)
  # A non-zero bias, so that adding it is checked too.
  features = variables["params"]["bias"].shape[0]
  variables = {"params": {**variables["params"], "bias": jnp.arange(features, dtype=jnp.float32)}}
  assert jax.tree.map(jnp.shape, gdjax_layer.init(jax.random.key(1), inputs)) == jax.tree.map(jnp.shape, variables)

  expected = flax_layer.apply(variables, inputs)
  actual = gdjax_layer.apply(variables, inputs)
  assert actual.shape == expected.shape == expected_shape
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)

  def loss(layer):
    return lambda variables, inputs: jnp.sum(jnp.sin(layer.apply(variables, inputs)))

  expected_grads = jax.grad(loss(flax_layer), argnums=(0, 1))(variables, inputs)
  actual_grads = jax.grad(loss(gdjax_layer), argnums=(0, 1))(variables, inputs)
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4), actual_grads, expected_grads)


@pytest.mark.parametrize("implementation", ["subpixel", "matmul"])
@pytest.mark.parametrize(
  "kernel_size,strides,input_hw,features",
  [
    ((4, 4), (2, 2), (7, 7), 8),  # DCGAN's shape; "matmul" multiplies by all 16 taps at once.
    ((4, 4), (2, 2), (7, 7), 17),  # 272 columns: "matmul" multiplies by each phase's taps.
    ((3, 3), (2, 2), (5, 6), 3),  # Odd kernel, non-square input.
    ((5, 3), (1, 2), (4, 4), 2),  # Stride 1 on one axis.
    ((2, 2), (3, 3), (3, 3), 2),  # Stride above the kernel: some phases see no tap.
  ],
)
def test_conv_transpose_forms_match_flax_and_its_gradients(implementation, kernel_size, strides, input_hw, features):
  inputs = jax.random.normal(jax.random.key(0), (2, *input_hw, 5))
  _assert_same_function(
    layers.ConvTranspose(features, kernel_size, strides=strides, implementation=implementation),
    nn.ConvTranspose(features, kernel_size, strides=strides, padding="SAME"),
    inputs,
    (2, input_hw[0] * strides[0], input_hw[1] * strides[1], features),
  )


@pytest.mark.parametrize(
  "kernel_size,strides,input_hw,in_channels",
  [
    ((4, 4), (2, 2), (28, 28), 1),  # The DCGAN discriminator's first layer.
    ((4, 4), (2, 2), (14, 14), 6),  # Its second.
    ((3, 3), (1, 1), (7, 5), 3),  # Stride 1, non-square.
    ((5, 3), (3, 2), (8, 7), 2),  # Strides that do not divide the input: uneven "SAME" padding.
  ],
)
def test_im2col_conv_matches_flax_conv_and_its_gradients(kernel_size, strides, input_hw, in_channels):
  inputs = jax.random.normal(jax.random.key(0), (3, *input_hw, in_channels))
  output_hw = tuple(-(-size // stride) for size, stride in zip(input_hw, strides))
  _assert_same_function(
    layers.Conv(4, kernel_size, strides=strides, implementation="im2col"),
    nn.Conv(4, kernel_size, strides=strides, padding="SAME"),
    inputs,
    (3, *output_hw, 4),
  )


def test_conv_transpose_forms_share_parameters():
  inputs = jax.random.normal(jax.random.key(0), (3, 7, 7, 4))
  variables = layers.ConvTranspose(6, implementation="xla").init(jax.random.key(1), inputs)
  expected = layers.ConvTranspose(6, implementation="xla").apply(variables, inputs)
  for implementation in ("subpixel", "matmul", "auto"):
    actual = layers.ConvTranspose(6, implementation=implementation).apply(variables, inputs)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_unknown_implementation_is_named():
  with pytest.raises(ValueError, match="subpixel, matmul"):
    layers.ConvTranspose(2, implementation="fft").init(jax.random.key(0), jnp.zeros((1, 3, 3, 1)))
  with pytest.raises(ValueError, match="Unknown conv implementation 'winograd'; choose one of auto, xla, im2col"):
    layers.Conv(2, implementation="winograd").init(jax.random.key(0), jnp.zeros((1, 3, 3, 1)))


@pytest.mark.parametrize("height,width", [(28, 28), (7, 5)])
def test_max_pool_2x2_matches_flax_max_pool_and_its_gradient(height, width):
  inputs = jax.random.normal(jax.random.key(0), (3, height, width, 4))

  def flax_pool(x):
    return nn.max_pool(x, (2, 2), strides=(2, 2))

  np.testing.assert_array_equal(layers.max_pool_2x2(inputs), flax_pool(inputs))
  weights = jax.random.normal(jax.random.key(1), flax_pool(inputs).shape)
  np.testing.assert_array_equal(
    jax.grad(lambda x: jnp.sum(layers.max_pool_2x2(x) * weights))(inputs),
    jax.grad(lambda x: jnp.sum(flax_pool(x) * weights))(inputs),
  )


def test_auto_picks_matrix_products_on_cpu_for_transposed_and_strided_convolutions():
  assert jax.default_backend() == "cpu"
  inputs = jax.random.normal(jax.random.key(0), (2, 7, 7, 4))

  def jaxpr_of(layer):
    return str(jax.make_jaxpr(layer.apply)(layer.init(jax.random.key(1), inputs), inputs))

  assert "conv_general_dilated" not in jaxpr_of(layers.ConvTranspose(8))
  assert "conv_general_dilated" not in jaxpr_of(layers.Conv(8, (4, 4), strides=(2, 2)))
  # At stride 1, and in bfloat16, XLA's own convolution is the faster one.
  assert jaxpr_of(layers.Conv(8, (3, 3))).count("conv_general_dilated") == 1
  assert jaxpr_of(layers.Conv(8, (4, 4), strides=(2, 2), dtype=jnp.bfloat16)).count("conv_general_dilated") == 1


def test_discriminator_keeps_flax_parameter_names():
  """The class is named `Conv`, so Flax auto-names its instances as it names `nn.Conv`'s: old checkpoints load."""
  images = jnp.zeros((2, 28, 28, 1))
  params = gans.DCGANDiscriminator(width=4).init(jax.random.key(0), images)["params"]
  assert jax.tree.map(jnp.shape, params) == {
    "Conv_0": {"kernel": (4, 4, 1, 4), "bias": (4,)},
    "Conv_1": {"kernel": (4, 4, 4, 8), "bias": (8,)},
    "Dense_0": {"kernel": (7 * 7 * 8, 1), "bias": (1,)},
  }
