"""PNG plots of a sweep (matplotlib, Agg backend): validation curves and final test metrics per group.

- `validation_<metric>.png`: the metric of the eval records in each run's
  metrics.jsonl against the step, one line per group (the mean over seeds)
  with a band from the smallest to the largest seed's value.
- `test_<metric>.png`: each group's final test metric as a bar, with the
  sample standard deviation over seeds as an error bar and the numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdjax.sweep import runs as runs_lib
from gdjax.sweep.plan import Run

PLOTS_DIR = "plots"


def curves(
  runs: Sequence[Run], results: Mapping[str, Mapping[str, Any]], metric: str
) -> dict[str, dict[int, list[float]]]:
  """group_id -> step -> the finished runs' values of `metric` in their eval records at that step."""
  by_group: dict[str, dict[int, list[float]]] = {}
  for run in runs:
    if results.get(run.run_id, {}).get("status") != "finished":
      continue
    per_step: dict[int, float] = {}
    for record in runs_lib.read_jsonl(Path(run.workdir) / runs_lib.METRICS_FILE):
      if record.get("split") == "eval" and "step" in record:
        value = runs_lib.numeric_metrics(record).get(metric)
        if value is not None:
          per_step[record["step"]] = value  # A step evaluated twice (a resumed run): the later one.
    for step, value in per_step.items():
      by_group.setdefault(run.group_id, {}).setdefault(step, []).append(value)
  return by_group


def write_plots(
  out: Path,
  runs: Sequence[Run],
  results: Mapping[str, Mapping[str, Any]],
  groups: Sequence[Mapping[str, Any]],
  *,
  validation_metrics: Sequence[str],
  test_metrics: Sequence[str],
) -> list[Path]:
  """Writes the plots into `out/plots/`; returns their paths. Metrics with no values get no plot."""
  import matplotlib

  matplotlib.use("Agg")  # Files only: no display, no GUI toolkit.
  import matplotlib.pyplot as plt

  directory = Path(out) / PLOTS_DIR
  directory.mkdir(parents=True, exist_ok=True)
  paths = []
  for metric in dict.fromkeys(validation_metrics):
    data = curves(runs, results, metric)
    if not data:
      continue
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for group_id, per_step in data.items():
      steps = sorted(per_step)
      values = [np.asarray(per_step[s], dtype=np.float64) for s in steps]
      mean = [v.mean() for v in values]
      (line,) = axes.plot(steps, mean, marker="o", markersize=3, label=f"{group_id} (n={max(map(len, values))})")
      axes.fill_between(steps, [v.min() for v in values], [v.max() for v in values], alpha=0.2, color=line.get_color())
    axes.set(xlabel="step", ylabel=metric, title=f"validation {metric}: mean over seeds, band min–max")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    paths.append(_save(figure, directory / f"validation_{_safe(metric)}.png"))
  for metric in dict.fromkeys(test_metrics):
    summaries = [(g["group_id"], g["metrics"].get(f"test/{metric}")) for g in groups]
    summaries = [(name, s) for name, s in summaries if s and s.get("n")]
    if not summaries:
      continue
    # Horizontal bars: group ids are long. Each bar is labelled with its numbers, since differences
    # between settings are often far smaller than the values.
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.45 * len(summaries)))
    positions = np.arange(len(summaries))[::-1]
    means = [s["mean"] for _, s in summaries]
    sds = [s["sd"] or 0.0 for _, s in summaries]
    axes.barh(positions, means, xerr=sds, capsize=4, color="tab:blue", alpha=0.8)
    axes.set_yticks(positions, [f"{name} (n={s['n']})" for name, s in summaries], fontsize=7)
    for y, mean, (_, s) in zip(positions, means, summaries):
      label = f"{mean:.4g}" + (f" ± {s['sd']:.2g}" if s["sd"] is not None else "")
      axes.annotate(label, (0, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7, color="white")
    axes.set(xlabel=metric, title=f"test {metric}: mean ± sd over seeds")
    axes.grid(axis="x", alpha=0.3)
    paths.append(_save(figure, directory / f"test_{_safe(metric)}.png"))
  return paths


def _save(figure, path: Path) -> Path:
  import matplotlib.pyplot as plt

  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path


def _safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "metric"
