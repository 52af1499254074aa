"""gdjax's train steps against PyTorch references of the same models, side by side.

For each benchmark model (the DCGAN, the CNN classifier and the MLP GAN, each
at batch 64 and 256) it builds gdjax's jitted train step from the config in
`configs/` (state from `gdjax.run_state.create_or_restore`, as training gets
it) and the PyTorch reference of the same architecture, loss, optimizer and
batch (`benchmarks.torch_dcgan`, `benchmarks.torch_reference`). After a
warm-up of both, it times windows of steps alternately (gdjax, PyTorch,
gdjax, ...) on fixed random batches already on the device, and reports per
model:

- steps/s and examples/s of each side (medians over `--repeats` windows) and
  the median of the per-pair ratios gdjax / PyTorch;
- gdjax's compile time;
- MFU: model FLOPs per step, counted from the convolutions and matmuls of
  gdjax's forward and backward pass (`benchmarks.flops`), times steps/s,
  divided by the matmul peak in the benchmark's dtype measured in the same
  run (the faster of jnp.dot and torch.mm on 2048x2048 matrices, 8192x8192
  on a GPU);
- peak step memory: gdjax's from XLA's buffer assignment for the compiled
  step (arguments + outputs + temporaries - donated aliases); PyTorch's from
  `torch.cuda.max_memory_allocated` on a GPU and, on CPU, the high-water mark
  of live tensor bytes over one step (`benchmarks.torch_memory`). Both count
  parameters, optimizer state, batch, activations and gradients, and neither
  counts framework code or allocator caches;
- the input pipeline's examples/s on its own (Fashion-MNIST through
  `gdjax.data.train_batches`), against the fastest step's consumption.

Run from the repository root:
  pip install -e '.[bench]'
  python -m benchmarks.suite [--models dcgan cnn mlp_gan] [--batch_sizes 64 256] [--repeats 5]
  python -m benchmarks.suite --device gpu  # PyTorch on CUDA; jax must see the GPU
  python -m benchmarks.suite --device gpu --dtype bfloat16  # mixed precision on both sides
  python -m benchmarks.suite --torch_compile  # against torch.compile'd models, not eager ones
  python -m benchmarks.suite --models dcgan --set model.discriminator.conv=xla  # another form of gdjax's step

`--dtype bfloat16` runs gdjax with `config.compute_dtype = "bfloat16"` and the
reference under `torch.autocast(dtype=torch.bfloat16)`: float32 weights and
optimizer state, bfloat16 activations, matmuls and convolutions, on both
sides. On a GPU, float32 runs let both sides use TF32 tensor cores, as XLA
does by default.

`--set FIELD=VALUE` changes gdjax's config only (the reference stays as it
is), to time another form of the same step against the same PyTorch step:
the convolution forms (`model.generator.conv_transpose`,
`model.discriminator.conv`), or the CNN without batch norm
(`model.use_batch_norm=False`, a bound on what any rewrite of batch norm
could gain). The settings go into each result's key.

Nothing about the reference is slowed down: it runs eagerly (or, with
`--torch_compile`, its models under `torch.compile`) on tensors on its
device, with `set_to_none` gradients and no host syncs inside the timed
windows except the one that ends each window on both sides.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from benchmarks import common, flops, torch_dcgan, torch_memory, torch_reference
from gdjax import parallel, run_state, tasks

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

MODELS = {
  # name: (config file, PyTorch trainer factory, whether the torch step takes float images in [-1, 1])
  # The seed DCGAN recipe (plain D), the model the PyTorch twin copies.
  "dcgan": ("gan_recipes/seed_recipe", lambda device: torch_dcgan.DCGANTrainer(device=device), True),
  "cnn": ("cnn_fashion_mnist", lambda device: torch_reference.CNNTrainer(device=device), False),
  "mlp_gan": ("mlp_gan_fashion_mnist", lambda device: torch_reference.MLPGANTrainer(device=device), False),
}


def matmul_peak_flops(torch_device: str, dtype: str, repeats: int = 10) -> dict:
  """Best matmul FLOP/s of jnp.dot and torch.mm in `dtype` on this machine."""
  size = 8192 if torch_device.startswith("cuda") else 2048  # Big enough to saturate the device.
  # Random operands: constant ones or zeros can run faster than real data on some hardware.
  operand = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
  a = jnp.asarray(operand, dtype)
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  jax_seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    dot(a, a).block_until_ready()
    jax_seconds.append(time.perf_counter() - start)
  t = torch.from_numpy(operand).to(device=torch_device, dtype=TORCH_DTYPES[dtype])
  torch.mm(t, t)
  _sync(torch_device)
  torch_seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    torch.mm(t, t)
    _sync(torch_device)
    torch_seconds.append(time.perf_counter() - start)
  flop = 2.0 * size**3
  result = {"jax": flop / min(jax_seconds), "torch": flop / min(torch_seconds)}
  result["peak"] = max(result.values())
  return result


def _sync(torch_device: str) -> None:
  if torch_device.startswith("cuda"):
    torch.cuda.synchronize()


class GdjaxStep:
  """gdjax's jitted train step of `configs/<config_name>.py` on a fixed random batch, compiled and ready to time."""

  def __init__(
    self,
    config_name: str,
    batch_size: int,
    random: np.random.Generator,
    dtype: str = "float32",
    overrides: dict | None = None,
  ):
    config = common.load_config(config_name)
    config.batch_size = batch_size
    config.compute_dtype = dtype
    config.update_from_flattened_dict(overrides or {})  # e.g. {"model.discriminator.conv": "xla"}
    self.task = tasks.build_task(config)
    mesh = parallel.make_data_mesh()
    run = run_state.create_or_restore(self.task, mesh, image_shape=(28, 28, 1), seed=0)
    self.state = run.state
    _, self.rng = run_state.root_keys(0)  # The step key, as the loop passes it.
    examples = self.task.examples_per_step
    self.batch = jax.device_put(
      {
        "image": random.integers(0, 256, (examples, 28, 28, 1), dtype=np.uint8),
        "label": random.integers(0, 10, examples).astype(np.int32),
      },
      parallel.batch_sharding(mesh),
    )
    step = parallel.jit_train_step(self.task.train_step, run.shapes, mesh)
    start = time.perf_counter()
    self.compiled = step.lower(self.state, self.batch, self.rng).compile()
    self.compile_s = time.perf_counter() - start
    self.flops_per_step = flops.matmul_and_conv_flops(self.task.train_step, self.state, self.batch, self.rng)
    memory = self.compiled.memory_analysis()
    self.peak_bytes = None
    if memory is not None:
      self.peak_bytes = (
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
      )

  def run(self, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      self.state, metrics = self.compiled(self.state, self.batch, self.rng)
    jax.block_until_ready((self.state, metrics))
    return time.perf_counter() - start


class TorchStep:
  """The PyTorch reference's step; with bfloat16, under autocast (float32 weights, bfloat16 compute).

  With `torch_compile`, each model the step runs (G and D, or the classifier) is
  wrapped in `torch.compile` (default mode, Inductor); the loss, optimizer
  and EMA updates stay eager, as in a typical compiled PyTorch training loop.
  """

  def __init__(
    self,
    factory,
    float_images: bool,
    examples: int,
    device: str,
    random,
    dtype: str = "float32",
    torch_compile: bool = False,
  ):
    self.trainer, self.device = factory(device), device
    if torch_compile:
      for name, module in vars(self.trainer).items():
        if isinstance(module, torch.nn.Module) and name != "ema_generator":  # The EMA copy only accumulates.
          setattr(self.trainer, name, torch.compile(module))
    self.autocast_dtype = TORCH_DTYPES[dtype] if dtype != "float32" else None
    images = torch.from_numpy(random.integers(0, 256, (examples, 1, 28, 28), dtype=np.uint8)).to(device)
    if float_images:
      self.batch = images.float() / 127.5 - 1.0
    else:
      self.batch = {"image": images, "label": torch.from_numpy(random.integers(0, 10, examples)).to(device)}

  def _step(self):
    device_type = "cuda" if self.device.startswith("cuda") else "cpu"
    with torch.autocast(device_type, dtype=self.autocast_dtype or torch.float32, enabled=bool(self.autocast_dtype)):
      return self.trainer.step(self.batch)

  def run(self, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      self._step()
    _sync(self.device)
    return time.perf_counter() - start

  def peak_bytes(self) -> int:
    """Peak memory of one step: CUDA's allocator statistics, or live tensor bytes on CPU (torch_memory)."""
    if self.device.startswith("cuda"):
      torch.cuda.synchronize()
      torch.cuda.reset_peak_memory_stats()
      self._step()
      torch.cuda.synchronize()
      return torch.cuda.max_memory_allocated()
    resident = torch_memory.resident_tensors(*vars(self.trainer).values(), self.batch)
    return torch_memory.peak_bytes_of_call(self._step, resident)


def pipeline_examples_per_s(batch_size: int, seconds: float = 3.0) -> float | None:
  """Fashion-MNIST batches out of gdjax's input pipeline alone; None without the dataset."""
  config = common.load_config("cnn_fashion_mnist")
  try:
    from gdjax import data  # TensorFlow, imported only here: a GPU box may time the steps without it.

    builder = data.get_builder(config.dataset)
  except Exception as e:  # No TensorFlow, no local copy and no network: report, don't fail the suite.
    print(f"input pipeline not measured: {type(e).__name__}: {e}")
    return None
  batches = data.train_batches(builder, config.dataset, global_batch_size=batch_size, seed=0)
  for _ in range(10):
    next(batches)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(batches)
    count += batch_size
  return count / (time.perf_counter() - start)


def parse_overrides(items: list[str]) -> dict:
  """`FIELD=VALUE` strings as a flattened config dict; values are Python literals (False, 3, 1e-3) or plain strings."""
  overrides = {}
  for item in items:
    field, sep, text = item.partition("=")
    if not sep or not field:
      raise SystemExit(f"--set takes FIELD=VALUE, e.g. model.discriminator.conv=xla; got {item!r}.")
    try:
      overrides[field] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      overrides[field] = text
  return overrides


def measure(
  model: str,
  batch_size: int,
  *,
  repeats: int,
  window_s: float,
  torch_device: str,
  peak: float,
  dtype: str,
  torch_compile: bool = False,
  overrides: dict | None = None,
) -> dict:
  """One model at one batch size: both steps timed alternately; one row of the results."""
  config_name, factory, float_images = MODELS[model]
  random = np.random.default_rng(0)
  ours = GdjaxStep(config_name, batch_size, random, dtype, overrides)
  theirs = TorchStep(factory, float_images, ours.task.examples_per_step, torch_device, random, dtype, torch_compile)
  # Warm-up (for torch.compile, its compilation), and the window length that takes about `window_s` seconds.
  ours.run(3)
  start = time.perf_counter()
  theirs.run(3)
  torch_warmup_s = time.perf_counter() - start
  rates = {"gdjax": 3 / ours.run(3), "pytorch": 3 / theirs.run(3)}
  steps = {name: max(3, int(rate * window_s)) for name, rate in rates.items()}
  gdjax_rates, torch_rates = [], []
  for _ in range(repeats):
    gdjax_rates.append(steps["gdjax"] / ours.run(steps["gdjax"]))
    torch_rates.append(steps["pytorch"] / theirs.run(steps["pytorch"]))
  ratios = [g / t for g, t in zip(gdjax_rates, torch_rates, strict=True)]
  torch_peak_bytes = theirs.peak_bytes()  # Outside the timed windows: counting slows the step.
  gdjax_steps_per_s = statistics.median(gdjax_rates)
  return {
    "model": model,
    "batch_size": batch_size,
    "key": f"{model}@{batch_size}"
    + ("" if dtype == "float32" else f"/{dtype}")
    + ("/compiled" if torch_compile else "")
    + "".join(f" {field}={value}" for field, value in (overrides or {}).items()),
    "gdjax_steps_per_s": gdjax_steps_per_s,
    "pytorch_steps_per_s": statistics.median(torch_rates),
    "gdjax_examples_per_s": gdjax_steps_per_s * batch_size,
    "pytorch_examples_per_s": statistics.median(torch_rates) * batch_size,
    "ratio": statistics.median(ratios),
    "ratio_min": min(ratios),
    "ratio_max": max(ratios),
    "compile_s": ours.compile_s,
    "pytorch_warmup_s": torch_warmup_s,
    "pytorch_compiled": torch_compile,
    "gflops_per_step": ours.flops_per_step / 1e9,
    "mfu": ours.flops_per_step * gdjax_steps_per_s / peak,
    "pytorch_mfu": ours.flops_per_step * statistics.median(torch_rates) / peak,
    "gdjax_peak_mib": ours.peak_bytes / 2**20 if ours.peak_bytes is not None else None,
    "pytorch_peak_mib": torch_peak_bytes / 2**20,
    "dtype": dtype,
    "overrides": overrides or {},
    "repeats": repeats,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
  parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--repeats", type=int, default=5, help="alternating timed windows per side")
  parser.add_argument("--window_s", type=float, default=2.0, help="about how long each timed window runs")
  parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
  parser.add_argument(
    "--dtype",
    choices=list(TORCH_DTYPES),
    default="float32",
    help="bfloat16: gdjax's compute_dtype=bfloat16 against torch.autocast(bfloat16), float32 weights on both",
  )
  parser.add_argument(
    "--torch_compile",
    action="store_true",
    help="wrap the PyTorch reference's models in torch.compile (Inductor) instead of running them eagerly",
  )
  parser.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="FIELD=VALUE",
    help="override a field of gdjax's config (not the reference's), e.g. model.discriminator.conv=xla; repeatable",
  )
  args = parser.parse_args()
  overrides = parse_overrides(args.set)

  torch_device = "cuda" if args.device == "gpu" else "cpu"
  if args.device == "gpu" and (jax.default_backend() != "gpu" or not torch.cuda.is_available()):
    raise SystemExit(
      f"--device gpu needs jax and torch to see a GPU (jax backend: {jax.default_backend()}, "
      f"torch.cuda.is_available(): {torch.cuda.is_available()})."
    )
  if args.device == "cpu":
    torch.set_num_threads(os.cpu_count() or 1)
  else:
    # Same float32 matmul math on both sides: XLA's default precision on NVIDIA GPUs uses
    # TF32 tensor cores for float32 dots and convolutions, so let PyTorch do the same.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
  peak = matmul_peak_flops(torch_device, args.dtype)
  print(
    f"{args.dtype} matmul peak: {peak['peak'] / 1e9:.1f} GFLOP/s "
    f"(jnp.dot {peak['jax'] / 1e9:.1f}, torch.mm {peak['torch'] / 1e9:.1f})"
  )
  rows = []
  for model in args.models:
    for batch_size in args.batch_sizes:
      row = measure(
        model,
        batch_size,
        repeats=args.repeats,
        window_s=args.window_s,
        torch_device=torch_device,
        peak=peak["peak"],
        dtype=args.dtype,
        torch_compile=args.torch_compile,
        overrides=overrides,
      )
      print(
        f"{row['key']}: gdjax {row['gdjax_steps_per_s']:.2f} steps/s, "
        f"pytorch {row['pytorch_steps_per_s']:.2f} steps/s, ratio {row['ratio']:.2f}",
        flush=True,
      )
      rows.append(row)
  pipeline = pipeline_examples_per_s(max(args.batch_sizes))
  fastest = max(rows, key=lambda r: r["gdjax_examples_per_s"])
  common.print_table(
    rows,
    [
      ("key", "model@batch"),
      ("gdjax_steps_per_s", "gdjax steps/s"),
      ("pytorch_steps_per_s", "pytorch steps/s"),
      ("ratio", "ratio (median)"),
      ("gdjax_examples_per_s", "gdjax examples/s"),
      ("compile_s", "compile s"),
      ("pytorch_warmup_s", "pytorch warm-up s"),
      ("gflops_per_step", "GFLOP/step"),
      ("mfu", "gdjax MFU"),
      ("pytorch_mfu", "pytorch MFU"),
      ("gdjax_peak_mib", "gdjax peak MiB"),
      ("pytorch_peak_mib", "pytorch peak MiB"),
    ],
  )
  if pipeline is not None:
    print(
      f"input pipeline alone: {pipeline:.0f} examples/s = {pipeline / fastest['gdjax_examples_per_s']:.1f}x "
      f"the fastest step's consumption ({fastest['key']}: {fastest['gdjax_examples_per_s']:.0f} examples/s)"
    )
  path = common.write_results(
    f"suite_{args.device}"
    + ("" if args.dtype == "float32" else f"_{args.dtype}")
    + ("_torch_compile" if args.torch_compile else ""),
    rows,
    merge_key="key",
    matmul_peak_flops=peak,
    pipeline_examples_per_s=pipeline,
    torch_version=torch.__version__,
  )
  print("wrote", path)


if __name__ == "__main__":
  main()
