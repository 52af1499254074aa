"""Model FLOPs counted from a jaxpr (`benchmarks/flops.py`) equal the textbook formulas."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from benchmarks import flops
from gdjax.models import layers


def test_two_layer_mlp_forward_and_parameter_gradients():
  batch, inputs, hidden, outputs = 8, 100, 256, 10
  x = jnp.ones((batch, inputs))
  params = (jnp.ones((inputs, hidden)), jnp.ones((hidden, outputs)))

  def loss(params, x):
    w1, w2 = params
    return jnp.sum(jnp.tanh(x @ w1) @ w2)

  forward = 2 * batch * (inputs * hidden + hidden * outputs)
  assert flops.matmul_and_conv_flops(loss, params, x) == forward
  # Backward: both weight gradients, plus the input gradient of the second layer only.
  expected = forward + forward + 2 * batch * hidden * outputs
  assert flops.matmul_and_conv_flops(jax.grad(loss), params, x) == expected


def test_strided_convolution_and_its_input_gradient():
  images = jnp.ones((2, 28, 28, 3))
  kernel = jnp.ones((4, 4, 3, 8))

  def conv(images, kernel):
    return jnp.sum(lax.conv_general_dilated(images, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))

  forward = 2 * (2 * 14 * 14 * 8) * (4 * 4 * 3)
  assert flops.matmul_and_conv_flops(conv, images, kernel) == forward
  # The input gradient multiplies each output gradient by every tap once: the forward's count, not 4x it.
  assert flops.matmul_and_conv_flops(jax.grad(conv, argnums=(0, 1)), images, kernel) == 3 * forward


@pytest.mark.parametrize("implementation", ["subpixel", "xla"])
def test_transposed_convolution_counts_the_same_in_either_form(implementation):
  layer = layers.ConvTranspose(16, implementation=implementation)
  x = jnp.ones((2, 7, 7, 32))
  variables = layer.init(jax.random.key(0), x)
  # Every input pixel meets all 4x4 taps once.
  expected = 2 * (2 * 7 * 7) * (4 * 4) * 32 * 16
  assert flops.matmul_and_conv_flops(layer.apply, variables, x) == expected


def test_scan_bodies_count_once_per_iteration():
  def repeated(x):
    return lax.scan(lambda carry, _: (carry @ jnp.ones((4, 4)), None), x, None, length=5)[0]

  assert flops.matmul_and_conv_flops(repeated, jnp.ones((3, 4))) == 5 * 2 * 3 * 4 * 4


def test_importing_it_pulls_in_neither_torch_nor_the_benchmarks_xla_flags():
  # A fresh interpreter: this process may have imported anything by now.
  check = (
    "import sys; from benchmarks import flops; "
    "assert 'torch' not in sys.modules and 'benchmarks.common' not in sys.modules, sorted(sys.modules)"
  )
  repo = Path(__file__).resolve().parents[1]
  done = subprocess.run([sys.executable, "-c", check], cwd=repo, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
