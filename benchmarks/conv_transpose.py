"""Forward + backward time of the DCGAN's convolutions, in each of gdjax's forms and in PyTorch.

Transposed convolutions, the generator's two shapes (7x7x128 -> 14x14x64 and
14x14x64 -> 28x28x1, 4x4 kernels, stride 2): `flax.linen.ConvTranspose`
(XLA's dilated convolution), gdjax's `ConvTranspose` as "subpixel" and as
"matmul", and PyTorch's `ConvTranspose2d`. Strided convolutions, the
discriminator's two shapes (28x28x1 -> 14x14x64 and 14x14x64 -> 7x7x128, 4x4,
stride 2): `flax.linen.Conv`, gdjax's `Conv` as "im2col", and `Conv2d`.
Every form has the same parameters and outputs (tests/test_layers.py). The
timers run alternately; the table gives medians in milliseconds of one
forward and backward pass (gradients for the parameters and the input).

Run:
  pip install -e '.[bench]'
  .venv/bin/python benchmarks/conv_transpose.py [--batch_sizes 64 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import print_table, write_results  # noqa: E402

from gdjax.models import layers  # noqa: E402

# (layer, input size, input channels, output channels), batch first in the table.
SHAPES = [("transposed", 7, 128, 64), ("transposed", 14, 64, 1), ("strided", 28, 1, 64), ("strided", 14, 64, 128)]


def jax_timer(module: nn.Module, inputs: jax.Array):
  variables = module.init(jax.random.key(0), inputs)

  @jax.jit
  def forward_backward(variables, inputs):
    return jax.grad(lambda v, x: jnp.sum(module.apply(v, x) ** 2), argnums=(0, 1))(variables, inputs)

  jax.block_until_ready(forward_backward(variables, inputs))

  def run():
    start = time.perf_counter()
    jax.block_until_ready(forward_backward(variables, inputs))
    return time.perf_counter() - start

  return run


def torch_timer(kind: str, batch: int, size: int, in_channels: int, out_channels: int):
  torch_layer = torch.nn.ConvTranspose2d if kind == "transposed" else torch.nn.Conv2d
  layer = torch_layer(in_channels, out_channels, 4, stride=2, padding=1)
  inputs = torch.randn(batch, in_channels, size, size, requires_grad=True)

  def run():
    start = time.perf_counter()
    layer.zero_grad(set_to_none=True)
    inputs.grad = None
    (layer(inputs) ** 2).sum().backward()
    return time.perf_counter() - start

  run()
  return run


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count() or 1)
  rows = []
  for batch in args.batch_sizes:
    for kind, size, in_channels, out_channels in SHAPES:
      inputs = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size, in_channels)), jnp.float32)
      if kind == "transposed":
        timers = {
          "flax_ms": jax_timer(nn.ConvTranspose(out_channels, (4, 4), strides=(2, 2), padding="SAME"), inputs),
          "subpixel_ms": jax_timer(layers.ConvTranspose(out_channels, implementation="subpixel"), inputs),
          "matmul_ms": jax_timer(layers.ConvTranspose(out_channels, implementation="matmul"), inputs),
        }
      else:
        timers = {
          "flax_ms": jax_timer(nn.Conv(out_channels, (4, 4), strides=(2, 2), padding="SAME"), inputs),
          "im2col_ms": jax_timer(layers.Conv(out_channels, (4, 4), strides=(2, 2), implementation="im2col"), inputs),
        }
      timers["pytorch_ms"] = torch_timer(kind, batch, size, in_channels, out_channels)
      times = {name: [] for name in timers}
      for _ in range(args.repeats):
        for name, run in timers.items():
          times[name].append(run())
      row = {"shape": f"{kind} {batch}x{size}x{size}x{in_channels}->{out_channels}"}
      row.update({name: 1e3 * statistics.median(t) for name, t in times.items()})
      row["auto_ms"] = row["matmul_ms"] if kind == "transposed" else row["im2col_ms"]
      row["flax_over_auto"] = row["flax_ms"] / row["auto_ms"]
      row["pytorch_over_auto"] = row["pytorch_ms"] / row["auto_ms"]
      rows.append(row)
  print_table(
    rows,
    [
      ("shape", "layer, input -> channels"),
      ("flax_ms", "Flax ms"),
      ("subpixel_ms", "sub-pixel ms"),
      ("matmul_ms", "matmul ms"),
      ("im2col_ms", "im2col ms"),
      ("pytorch_ms", "PyTorch ms"),
      ("flax_over_auto", "Flax / gdjax auto"),
      ("pytorch_over_auto", "PyTorch / gdjax auto"),
    ],
  )
  print("wrote", write_results("conv_transpose", rows, merge_key="shape"))


if __name__ == "__main__":
  main()
