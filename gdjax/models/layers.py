"""Layers shared by gdjax's models: faster stand-ins for Flax layers on XLA:CPU.

Each layer here has the parameter names, shapes and initialisers of the Flax
layer it replaces, so checkpoints are interchangeable, and computes the same
function (tests/test_layers.py checks outputs and gradients against Flax).
What changes is how XLA computes it. XLA:CPU runs plain matrix products near
the machine's peak but is slow on some convolutions: the gradient of the
dilated convolution behind `lax.conv_transpose`, and the gradients of strided
convolutions at large batch. docs/measurements/conv_transpose.md and
conv_forms.md hold the per-layer and per-step measurements, and
`python -m benchmarks.suite` times the whole steps.

`ConvTranspose` (strided transposed convolution) offers three forms:
  - "xla": `lax.conv_transpose`, as `flax.linen.ConvTranspose` computes it.
  - "subpixel": one stride-1 convolution per output phase, interleaved by a
    depth-to-space shuffle.
  - "matmul": matrix products of the input with the kernel taps, then each
    output phase sums its taps' products, shifted. No convolution at all.
`Conv` ("SAME" padding) offers "xla" and "im2col" (gathers each output
position's receptive field into one row, then one matrix product).
"auto" picks the form measured fastest on the backend that runs it: on CPU
"matmul" for transposed convolutions and "im2col" for strided float32
convolutions; on GPU and TPU, whose convolution libraries have no such gaps,
XLA's own.

The identity behind both transposed forms: with input dilation s and "SAME"
padding, output position o = s*m + p only meets kernel taps t with
(p + t - pad_before) divisible by s, each reading input row
m + (p + t - pad_before) // s. So every phase p is a small stride-1
correlation of the undilated input with a subset of the taps.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype
from jax import lax

# The "matmul" transposed convolution multiplies the input by all kernel taps
# in one product when that product has at most this many columns (taps x
# output channels; 16 for the DCGAN's 1-channel output layer), else by each
# output phase's taps separately, which keeps the intermediate small (the
# 64-channel layer measured a third faster so at batch 256).
MATMUL_ONE_PRODUCT_MAX_COLUMNS = 256
_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _same_padding_before(kernel_size: int, stride: int) -> int:
  """Leading padding `lax.conv_transpose` uses for "SAME" (its dilated-conv form)."""
  if stride > kernel_size - 1:
    return kernel_size - 1
  return int(np.ceil((kernel_size + stride - 2) / 2))


def phase_taps(kernel_size: int, stride: int) -> list[list[tuple[int, int]]]:
  """For each output phase, the (kernel tap, input offset) pairs it reads."""
  pad_before = _same_padding_before(kernel_size, stride)
  return [
    [
      (tap, (phase + tap - pad_before) // stride)
      for tap in range(kernel_size)
      if (phase + tap - pad_before) % stride == 0
    ]
    for phase in range(stride)
  ]


def _interleave_phases(phase_rows: list[list[jax.Array]], strides: Sequence[int]) -> jax.Array:
  """[row phase][column phase] arrays [N, H, W, C] -> [N, H * stride_h, W * stride_w, C], phase (p, q) at (s*m+p, s*l+q)."""
  batch, height, width, channels = phase_rows[0][0].shape
  interleaved = jnp.stack([jnp.stack(row, axis=3) for row in phase_rows], axis=3)  # [N, H, W, sh, sw, C]
  interleaved = interleaved.transpose(0, 1, 3, 2, 4, 5)  # [N, H, sh, W, sw, C]
  return interleaved.reshape(batch, height * strides[0], width * strides[1], channels)


def _shifted(array: jax.Array, offset_h: int, offset_w: int) -> jax.Array:
  """`out[:, m, l] = array[:, m + offset_h, l + offset_w]`, zero where that falls outside `array`."""
  padding = [(0, 0, 0), (-offset_h, offset_h, 0), (-offset_w, offset_w, 0)] + [(0, 0, 0)] * (array.ndim - 3)
  return lax.pad(array, jnp.zeros((), array.dtype), padding)


def subpixel_conv_transpose(inputs: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals `lax.conv_transpose(inputs, kernel, strides, "SAME")` for NHWC/HWIO.

  Computes stride_h * stride_w stride-1 convolutions, one per output phase,
  then interleaves them. Needs no input dilation, so neither pass of autodiff
  touches the zeros a dilated convolution would multiply.
  """
  taps_h = phase_taps(kernel.shape[0], strides[0])
  taps_w = phase_taps(kernel.shape[1], strides[1])
  rows = []
  for taps_of_row_phase in taps_h:
    phases = []
    for taps_of_col_phase in taps_w:
      if not taps_of_row_phase or not taps_of_col_phase:  # stride > kernel: this phase sees no tap
        phases.append(jnp.zeros(inputs.shape[:3] + kernel.shape[-1:], inputs.dtype))
        continue
      tap_rows = np.array([tap for tap, _ in taps_of_row_phase])
      tap_cols = np.array([tap for tap, _ in taps_of_col_phase])
      offsets_h = [offset for _, offset in taps_of_row_phase]
      offsets_w = [offset for _, offset in taps_of_col_phase]
      padding = [(-min(offsets_h), max(offsets_h)), (-min(offsets_w), max(offsets_w))]
      phase_kernel = kernel[tap_rows[:, None], tap_cols[None, :]]
      phases.append(
        lax.conv_general_dilated(inputs, phase_kernel, (1, 1), padding, dimension_numbers=_DIMENSION_NUMBERS)
      )
    rows.append(phases)
  return _interleave_phases(rows, strides)


def matmul_conv_transpose(inputs: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals `lax.conv_transpose(inputs, kernel, strides, "SAME")` for NHWC/HWIO, without a convolution.

  Multiplies every input pixel by the kernel taps (matrix products over the
  input channels), then builds each output phase as the sum of its taps'
  products, each shifted by that tap's input offset, and interleaves the
  phases. Autodiff turns the shifts into shifts and the products into
  products, so the backward pass is matrix products too.
  """
  batch, height, width, in_channels = inputs.shape
  kernel_h, kernel_w, _, features = kernel.shape
  pixels = inputs.reshape(-1, in_channels)
  one_product = kernel_h * kernel_w * features <= MATMUL_ONE_PRODUCT_MAX_COLUMNS
  if one_product:
    every_tap = jnp.dot(pixels, kernel.transpose(2, 0, 1, 3).reshape(in_channels, -1))
    every_tap = every_tap.reshape(batch, height, width, kernel_h, kernel_w, features)
  rows = []
  for taps_of_row_phase in phase_taps(kernel_h, strides[0]):
    phases = []
    for taps_of_col_phase in phase_taps(kernel_w, strides[1]):
      taps = [(tap_h, off_h, tap_w, off_w) for tap_h, off_h in taps_of_row_phase for tap_w, off_w in taps_of_col_phase]
      if not taps:  # stride > kernel: this phase sees no tap
        phases.append(jnp.zeros((batch, height, width, features), inputs.dtype))
        continue
      if one_product:
        products = [every_tap[:, :, :, tap_h, tap_w] for tap_h, _, tap_w, _ in taps]
      else:
        phase_kernel = jnp.concatenate([kernel[tap_h, tap_w] for tap_h, _, tap_w, _ in taps], axis=-1)
        phase_products = jnp.dot(pixels, phase_kernel).reshape(batch, height, width, len(taps), features)
        products = [phase_products[..., index, :] for index in range(len(taps))]
      shifted = [_shifted(product, off_h, off_w) for product, (_, off_h, _, off_w) in zip(products, taps)]
      phases.append(functools.reduce(jnp.add, shifted))
    rows.append(phases)
  return _interleave_phases(rows, strides)


def im2col_conv(inputs: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals `lax.conv_general_dilated(inputs, kernel, strides, "SAME")` for NHWC/HWIO.

  Gathers each output position's receptive field (kernel_h * kernel_w
  strided slices of the padded input, concatenated along channels) into one
  row and multiplies by the kernel, flattened in the same (tap_h, tap_w,
  channel) order. Both gradients are then a matrix product and slices.
  """
  batch, _, _, in_channels = inputs.shape
  kernel_h, kernel_w, _, features = kernel.shape
  stride_h, stride_w = strides
  padding = lax.padtype_to_pads(inputs.shape[1:3], (kernel_h, kernel_w), strides, "SAME")
  padded = jnp.pad(inputs, [(0, 0), *padding, (0, 0)])
  out_h = (padded.shape[1] - kernel_h) // stride_h + 1
  out_w = (padded.shape[2] - kernel_w) // stride_w + 1
  columns = [
    lax.slice(
      padded,
      (0, tap_h, tap_w, 0),
      (batch, tap_h + stride_h * (out_h - 1) + 1, tap_w + stride_w * (out_w - 1) + 1, in_channels),
      (1, stride_h, stride_w, 1),
    )
    for tap_h in range(kernel_h)
    for tap_w in range(kernel_w)
  ]
  patches = jnp.concatenate(columns, axis=-1).reshape(-1, kernel_h * kernel_w * in_channels)
  return jnp.dot(patches, kernel.reshape(-1, features)).reshape(batch, out_h, out_w, features)


def _on_cpu() -> bool:
  return jax.default_backend() == "cpu"


def _xla_conv(inputs: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  return lax.conv_general_dilated(inputs, kernel, tuple(strides), "SAME", dimension_numbers=_DIMENSION_NUMBERS)


def _xla_conv_transpose(inputs: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  return lax.conv_transpose(inputs, kernel, tuple(strides), "SAME", dimension_numbers=_DIMENSION_NUMBERS)


class _ConvolutionInForms(nn.Module):
  """A "SAME"-padded NHWC convolution layer with Flax's parameters, computed in one of `forms`.

  Subclasses name their forms (functions `(inputs, kernel, strides) -> outputs`)
  and say which one "auto" picks.

  Attributes:
    features: output channels.
    kernel_size: (height, width) of the kernel.
    strides: (height, width) strides.
    use_bias: whether to add a bias.
    implementation: "auto" or one of the subclass's forms.
    dtype: computation dtype; the parameters are float32 and cast to it.
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  use_bias: bool = True
  implementation: str = "auto"
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: Any = jnp.float32

  forms: ClassVar[dict[str, Callable[[jax.Array, jax.Array, Sequence[int]], jax.Array]]] = {}
  config_name: ClassVar[str] = ""

  def auto_form(self, dtype: Any) -> str:
    raise NotImplementedError

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    choices = ("auto", *self.forms)
    if self.implementation not in choices:
      raise ValueError(
        f"Unknown {self.config_name} implementation {self.implementation!r}; choose one of {', '.join(choices)}."
      )
    kernel_shape = tuple(self.kernel_size) + (inputs.shape[-1], self.features)
    kernel = self.param("kernel", self.kernel_init, kernel_shape, jnp.float32)
    bias = self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else None
    inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    form = self.auto_form(inputs.dtype) if self.implementation == "auto" else self.implementation
    outputs = self.forms[form](inputs, kernel, self.strides)
    return outputs if bias is None else outputs + bias.reshape((1,) * (outputs.ndim - 1) + (-1,))


class ConvTranspose(_ConvolutionInForms):
  """2-D transposed convolution: `flax.linen.ConvTranspose(..., padding="SAME")` with a choice of form.

  `strides` are the upsampling factors. `implementation`: "xla"
  (`lax.conv_transpose`, as Flax computes it), "subpixel", "matmul" (see the
  module docstring), or "auto" ("matmul" on CPU, "xla" elsewhere).
  """

  kernel_size: tuple[int, int] = (4, 4)
  strides: tuple[int, int] = (2, 2)

  forms: ClassVar = {"xla": _xla_conv_transpose, "subpixel": subpixel_conv_transpose, "matmul": matmul_conv_transpose}
  config_name: ClassVar[str] = "conv_transpose"

  def auto_form(self, dtype: Any) -> str:
    return "matmul" if _on_cpu() else "xla"


class Conv(_ConvolutionInForms):
  """2-D convolution: `flax.linen.Conv(..., padding="SAME")` with a choice of form.

  `implementation`: "xla" (`lax.conv_general_dilated`, as Flax computes it),
  "im2col" (see `im2col_conv`), or "auto" (see `auto_form`).
  """

  forms: ClassVar = {"xla": _xla_conv, "im2col": im2col_conv}
  config_name: ClassVar[str] = "conv"

  def auto_form(self, dtype: Any) -> str:
    """im2col for strided float32 convolutions on CPU, XLA's form otherwise.

    Measured on whole train steps (docs/measurements/conv_forms.md): in float32,
    im2col made the DCGAN step at batch 256 and the WGAN-GP step (whose
    penalty differentiates the input gradient again) much faster, and the
    DCGAN step at batch 64 8-13 % slower; one rule covers them, and
    `implementation="xla"` is there for the last case. In bfloat16 XLA:CPU's
    matrix products are slower than its float32 ones, and im2col made the
    DCGAN step 40 % slower.
    """
    if _on_cpu() and max(self.strides) > 1 and jnp.dtype(dtype) == jnp.float32:
      return "im2col"
    return "xla"


def max_pool_2x2(inputs: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 ("VALID": an odd last row or column is dropped).

  Equals `flax.linen.max_pool(x, (2, 2), strides=(2, 2))` as a reshape and a
  max reduction, whose gradient is an elementwise mask; XLA:CPU runs it about
  a quarter faster in the CNN's training step than the windowed reduction's
  select-and-scatter gradient (docs/measurements/classifier_throughput.md).
  """
  batch, height, width, channels = inputs.shape
  cropped = inputs[:, : height // 2 * 2, : width // 2 * 2]
  return cropped.reshape(batch, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))
