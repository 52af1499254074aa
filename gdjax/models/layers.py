"""Layers shared by gdjax's models.

`ConvTranspose` is a drop-in for `flax.linen.ConvTranspose` (same parameter
names, shapes and initialisers, so checkpoints are interchangeable) that can
compute a strided transposed convolution as ordinary convolutions, one per
output phase, interleaved by a depth-to-space shuffle. XLA:CPU is slow on the
gradient of the dilated convolution behind `lax.conv_transpose` and fast on
plain convolutions; `benchmarks/conv_transpose.py` measures the difference.

The identity used: with input dilation s and "SAME" padding, output position
o = s*m + p only meets kernel taps t with (p + t - pad_before) divisible by s,
each reading input row m + (p + t - pad_before) // s. So every phase p is a
small stride-1 correlation of the undilated input with a subset of the taps.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype
from jax import lax

CONV_TRANSPOSE_IMPLEMENTATIONS = ("auto", "xla", "subpixel")
# "auto" computes layers with fewer output channels than this in XLA's form:
# with one output channel the phase convolutions measured 2-4x slower than
# it, with 64 about 5x faster (benchmarks/conv_transpose.py).
AUTO_SUBPIXEL_MIN_FEATURES = 8
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


def subpixel_conv_transpose(inputs: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Equals `lax.conv_transpose(inputs, kernel, strides, "SAME")` for NHWC/HWIO.

  Computes stride_h * stride_w stride-1 convolutions, one per output phase,
  then interleaves them. Needs no input dilation, so neither pass of autodiff
  touches the zeros a dilated convolution would multiply.
  """
  stride_h, stride_w = strides
  taps_h = phase_taps(kernel.shape[0], stride_h)
  taps_w = phase_taps(kernel.shape[1], stride_w)
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
    rows.append(jnp.stack(phases, axis=3))  # [N, H, W, stride_w, C]
  batch, height, width = inputs.shape[:3]
  interleaved = jnp.stack(rows, axis=3)  # [N, H, W, stride_h, stride_w, C]
  interleaved = interleaved.transpose(0, 1, 3, 2, 4, 5)  # [N, H, stride_h, W, stride_w, C]
  return interleaved.reshape(batch, height * stride_h, width * stride_w, kernel.shape[-1])


class ConvTranspose(nn.Module):
  """2-D transposed convolution, "SAME" padding, NHWC, Flax's parameter layout.

  Attributes:
    features: output channels.
    kernel_size: (height, width) of the kernel.
    strides: (height, width) strides, i.e. the upsampling factors.
    use_bias: whether to add a bias.
    implementation: "subpixel" (phase convolutions, see module docstring),
      "xla" (`lax.conv_transpose`, as `flax.linen.ConvTranspose` does), or
      "auto" (sub-pixel from `AUTO_SUBPIXEL_MIN_FEATURES` output channels up).
    dtype: computation dtype; the parameters are float32 and cast to it.
  """

  features: int
  kernel_size: tuple[int, int] = (4, 4)
  strides: tuple[int, int] = (2, 2)
  use_bias: bool = True
  implementation: str = "auto"
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    if self.implementation not in CONV_TRANSPOSE_IMPLEMENTATIONS:
      raise ValueError(
        f"Unknown conv_transpose implementation {self.implementation!r}; "
        f"choose one of {', '.join(CONV_TRANSPOSE_IMPLEMENTATIONS)}."
      )
    kernel_shape = tuple(self.kernel_size) + (inputs.shape[-1], self.features)
    kernel = self.param("kernel", self.kernel_init, kernel_shape, jnp.float32)
    bias = self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else None
    inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    implementation = self.implementation
    if implementation == "auto":
      implementation = "subpixel" if self.features >= AUTO_SUBPIXEL_MIN_FEATURES else "xla"
    if implementation == "subpixel":
      outputs = subpixel_conv_transpose(inputs, kernel, self.strides)
    else:
      outputs = lax.conv_transpose(inputs, kernel, tuple(self.strides), "SAME", dimension_numbers=_DIMENSION_NUMBERS)
    if bias is not None:
      outputs = outputs + bias.reshape((1,) * (outputs.ndim - 1) + (-1,))
    return outputs


def max_pool_2x2(inputs: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 ("VALID": an odd last row or column is dropped).

  Equals `flax.linen.max_pool(x, (2, 2), strides=(2, 2))` as a reshape and a
  max reduction, whose gradient is an elementwise mask; XLA:CPU runs it about
  a quarter faster in the CNN's training step than the windowed reduction's
  select-and-scatter gradient (measured by benchmarks/classifier_throughput.py).
  """
  batch, height, width, channels = inputs.shape
  cropped = inputs[:, : height // 2 * 2, : width // 2 * 2]
  return cropped.reshape(batch, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))
