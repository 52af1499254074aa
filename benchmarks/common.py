"""Helpers shared by the benchmark scripts: loading configs and timing.

Importing this module applies gdjax's default XLA flags (`gdjax.xla_flags`),
as the `gdjax` command does, so the scripts time what training runs; every
script imports it before it first uses JAX. Results record the XLA_FLAGS they
ran with.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

from gdjax import xla_flags

xla_flags.apply_defaults()

REPO = Path(__file__).resolve().parents[1]
CLASSIFIER_CONFIGS = ("cnn_fashion_mnist", "mlp_fashion_mnist", "linear_svm_fashion_mnist")


def load_config(name: str):
  """`configs/<name>.py`'s `get_config()`."""
  path = REPO / "configs" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"gdjax_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def config_names(task: str) -> list[str]:
  """The configs in `configs/` whose `task` is `task`, so a new config file is picked up by itself."""
  return sorted(p.stem for p in (REPO / "configs").glob("*.py") if load_config(p.stem).task == task)


def machine_description() -> str:
  import jax

  cpu = platform.processor() or platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}"


def median_rate(count: int, seconds: list[float]) -> float:
  return count / statistics.median(seconds)


def timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def write_results(name: str, rows: list[dict], *, merge_key: str | None = None, **extra) -> Path:
  """Writes `benchmarks/results/<name>.json`; with `merge_key`, rows of earlier runs with other keys stay."""
  out_dir = REPO / "benchmarks" / "results"
  out_dir.mkdir(exist_ok=True)
  path = out_dir / f"{name}.json"
  stamp = {
    "date": date.today().isoformat(),
    "machine": machine_description(),
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }
  rows = [{**row, **stamp} for row in rows]
  if merge_key and path.exists():
    fresh = {row[merge_key] for row in rows}
    rows = [row for row in json.loads(path.read_text())["rows"] if row[merge_key] not in fresh] + rows
  payload = {**stamp, "rows": rows, **extra}
  path.write_text(json.dumps(payload, indent=2) + "\n")
  return path


def print_table(rows: list[dict], columns: list[tuple[str, str]]) -> None:
  header = " | ".join(title for _, title in columns)
  print(header)
  print("-" * len(header))
  for row in rows:
    cells = []
    for key, _ in columns:
      value = row.get(key, "")
      cells.append(f"{value:.4g}" if isinstance(value, float) else str(value))
    print(" | ".join(cells))
