"""gdjax's faster layers equal the Flax layers they stand in for."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdjax.models import layers


@pytest.mark.parametrize(
  "kernel_size,strides,input_hw,features",
  [
    ((4, 4), (2, 2), (7, 7), 8),  # DCGAN's shape.
    ((3, 3), (2, 2), (5, 6), 3),  # Odd kernel, non-square input.
    ((5, 3), (1, 2), (4, 4), 2),  # Stride 1 on one axis.
    ((2, 2), (3, 3), (3, 3), 2),  # Stride above the kernel: some phases see no tap.
  ],
)
def test_subpixel_matches_flax_conv_transpose_and_its_gradients(kernel_size, strides, input_hw, features):
  inputs = jax.random.normal(jax.random.key(0), (2, *input_hw, 5))
  flax_layer = nn.ConvTranspose(features, kernel_size, strides=strides, padding="SAME")
  variables = flax_layer.init(jax.random.key(1), inputs)
  # A non-zero bias, so that adding it is checked too.
  variables = {"params": {**variables["params"], "bias": jnp.arange(features, dtype=jnp.float32)}}
  gdjax_layer = layers.ConvTranspose(features, kernel_size, strides=strides, implementation="subpixel")
  assert jax.tree.map(jnp.shape, gdjax_layer.init(jax.random.key(1), inputs)) == jax.tree.map(jnp.shape, variables)

  expected = flax_layer.apply(variables, inputs)
  actual = gdjax_layer.apply(variables, inputs)
  assert actual.shape == expected.shape == (2, input_hw[0] * strides[0], input_hw[1] * strides[1], features)
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)

  def loss(layer):
    return lambda variables, inputs: jnp.sum(jnp.sin(layer.apply(variables, inputs)))

  expected_grads = jax.grad(loss(flax_layer), argnums=(0, 1))(variables, inputs)
  actual_grads = jax.grad(loss(gdjax_layer), argnums=(0, 1))(variables, inputs)
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4), actual_grads, expected_grads)


def test_both_implementations_share_parameters():
  inputs = jax.random.normal(jax.random.key(0), (3, 7, 7, 4))
  subpixel = layers.ConvTranspose(6, implementation="subpixel")
  variables = subpixel.init(jax.random.key(1), inputs)
  np.testing.assert_allclose(
    subpixel.apply(variables, inputs),
    layers.ConvTranspose(6, implementation="xla").apply(variables, inputs),
    rtol=1e-5,
    atol=1e-5,
  )


def test_unknown_implementation_is_named():
  with pytest.raises(ValueError, match="subpixel"):
    layers.ConvTranspose(2, implementation="fft").init(jax.random.key(0), jnp.zeros((1, 3, 3, 1)))


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


def test_auto_picks_subpixel_for_wide_layers_and_xla_for_narrow_ones():
  inputs = jax.random.normal(jax.random.key(0), (2, 7, 7, 4))
  for features in (1, layers.AUTO_SUBPIXEL_MIN_FEATURES):
    auto = layers.ConvTranspose(features, implementation="auto")
    variables = auto.init(jax.random.key(1), inputs)
    expected = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME").apply(variables, inputs)
    np.testing.assert_allclose(auto.apply(variables, inputs), expected, rtol=1e-5, atol=1e-5)
  narrow = jax.make_jaxpr(layers.ConvTranspose(1).apply)(variables_of(1, inputs), inputs)
  wide = jax.make_jaxpr(layers.ConvTranspose(8).apply)(variables_of(8, inputs), inputs)
  assert str(narrow).count("conv_general_dilated") == 1  # One dilated convolution: XLA's form.
  assert str(wide).count("conv_general_dilated") == 4  # One per output phase.


def variables_of(features, inputs):
  return layers.ConvTranspose(features).init(jax.random.key(1), inputs)
