"""Size and compile time of a config's compiled train step: HLO instructions and seconds to compile.

It builds the config's task, lowers `jax.jit(task.train_step)` on zero
batches of the config's shape and compiles it on the CPU, then counts the
instructions of the optimised HLO module (the lines of `compiled.as_text()`
that assign a value). It touches no data and trains nothing, so it runs in
seconds and can measure any checkout of gdjax that has `tasks.build_task`,
`task.init_state(rng, image_shape)` and `task.train_step(state, batch, rng)`:
run it as a file with that checkout first on PYTHONPATH to compare two
versions of the code.

Run (from the repository root):
  .venv/bin/python benchmarks/step_program.py --configs wgan_gp_fashion_mnist dcgan_fashion_mnist
  git worktree add /tmp/gdjax_other <commit>
  PYTHONPATH=/tmp/gdjax_other .venv/bin/python benchmarks/step_program.py --config_dir /tmp/gdjax_other/configs

Prints one JSON line per config (the gdjax it imported, instructions,
compile seconds as the median of --repeats fresh compilations).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import gdjax
from gdjax import tasks

_INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?[\w.\-]+\s*=\s")
IMAGE_SHAPE = (28, 28, 1)


def load_config(config_dir: Path, name: str):
  spec = importlib.util.spec_from_file_location(name, config_dir / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def measure(config, repeats: int) -> dict:
  config.input_shape = IMAGE_SHAPE
  task = tasks.build_task(config)
  state = jax.eval_shape(lambda: task.init_state(jax.random.key(0), IMAGE_SHAPE))
  batch_size = task.examples_per_step
  batch = {
    "image": jax.ShapeDtypeStruct((batch_size, *IMAGE_SHAPE), jnp.uint8),
    "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
  }
  rng = jax.eval_shape(lambda: jax.random.key(0))
  seconds, text = [], ""
  for _ in range(repeats):
    lowered = jax.jit(task.train_step).lower(state, batch, rng)  # A fresh jit each time: no compilation cache.
    start = time.perf_counter()
    compiled = lowered.compile()
    seconds.append(time.perf_counter() - start)
    text = compiled.as_text()
  instructions = sum(1 for line in text.splitlines() if _INSTRUCTION.match(line))
  return {"instructions": instructions, "compile_seconds": round(statistics.median(seconds), 2)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", nargs="+", default=["wgan_gp_fashion_mnist", "dcgan_fashion_mnist"])
  parser.add_argument("--config_dir", type=Path, default=Path(__file__).resolve().parent.parent / "configs")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  for name in args.configs:
    row = {
      "config": name,
      "gdjax": str(Path(gdjax.__file__).parent),
      **measure(load_config(args.config_dir, name), args.repeats),
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  main()
