"""What the benchmark scripts share: configs, the machine's description, results files and tables.

Importing this module applies gdjax's default XLA flags (`gdjax.xla_flags`),
as the `gdjax` command does, so the scripts time what training runs. XLA
reads the flags when JAX starts its first backend, so every script imports
this module before it first uses JAX. Results record the XLA_FLAGS they ran
with.
"""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import date
from pathlib import Path

from gdjax import xla_flags
from gdjax.sweep import report

xla_flags.apply_defaults()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # Before TensorFlow loads (gdjax.data imports it).

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def load_config(name: str):
  """`configs/<name>.py`'s `get_config()`."""
  path = REPO / "configs" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"gdjax_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def machine_description() -> str:
  """CPU model, core count, Python and jax versions (as `gdjax sweep` records them), and JAX's backend."""
  import jax

  return f"{report.machine_description()} on {jax.default_backend()}"


def write_results(name: str, rows: list[dict], *, merge_key: str | None = None, **extra) -> Path:
  """Writes `benchmarks/results/<name>.json`; with `merge_key`, rows of earlier runs with other keys stay."""
  RESULTS.mkdir(exist_ok=True)
  path = RESULTS / f"{name}.json"
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
  """`rows` as a plain-text table of `columns`, `(key, title)` pairs; floats to 4 significant digits."""
  header = " | ".join(title for _, title in columns)
  print(header)
  print("-" * len(header))
  for row in rows:
    cells = []
    for key, _ in columns:
      value = row.get(key, "")
      cells.append(f"{value:.4g}" if isinstance(value, float) else str(value))
    print(" | ".join(cells))
