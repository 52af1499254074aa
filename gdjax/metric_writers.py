"""Where metrics go: a JSONL file and TensorBoard event files in the workdir.

Only process 0 writes; on other processes the writer does nothing, so callers
need not check.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
from tensorboardX import SummaryWriter

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
  """Appends `{"step", "split", <metric>: value}` lines and TensorBoard scalars."""

  def __init__(self, workdir: str | Path):
    self.active = jax.process_index() == 0
    if self.active:
      self.jsonl = open(Path(workdir) / METRICS_FILE, "a")
      self.tensorboard = SummaryWriter(str(Path(workdir) / "tensorboard"))

  def write(self, step: int, split: str, scalars: dict) -> None:
    if not self.active:
      return
    values = {k: _to_python(v) for k, v in scalars.items()}
    self.jsonl.write(json.dumps({"step": step, "split": split, **values}) + "\n")
    self.jsonl.flush()
    for name, value in values.items():
      if isinstance(value, (int, float)) and math.isfinite(value):
        self.tensorboard.add_scalar(f"{split}/{name}", value, step)

  def close(self) -> None:
    if self.active:
      self.jsonl.close()
      self.tensorboard.close()


def _to_python(value):
  value = value.item() if hasattr(value, "item") else value
  return value
