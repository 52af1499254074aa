"""Results over seeds: groups, their statistics, and the setting chosen on validation.

Pure functions of the plan and the runs' results. A group is the runs that
differ only in their seed. Each metric of a group is summarised by its mean,
sample standard deviation (ddof=1; None for one seed) and count over the
group's finished runs. Test metrics are named `test/<name>` and the
validation value of the selection metric `validation/<name>`.

Settings are chosen honestly: per config, the setting with the best mean
validation value of the selection metric wins, and only then are its test
metrics looked at. Nothing is ranked on a test metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gdjax.sweep.plan import Run


def summarize(values: Sequence[float]) -> dict[str, Any]:
  """{"mean", "sd" (ddof=1, None below two values), "n"}; mean None for no values."""
  array = np.asarray(values, dtype=np.float64)
  n = int(array.size)
  return {
    "mean": float(array.mean()) if n else None,
    "sd": float(array.std(ddof=1)) if n > 1 else None,
    "n": n,
  }


def group_results(runs: Sequence[Run], results: Mapping[str, Mapping[str, Any]]) -> list[dict]:
  """One entry per group, in plan order: its setting, run counts and the summary of every metric."""
  groups: dict[str, dict] = {}
  values: dict[str, dict[str, list[float]]] = {}
  for run in runs:
    group = groups.setdefault(
      run.group_id,
      {
        "group_id": run.group_id,
        "config": run.config,
        "config_name": run.config_name,
        "setting": run.setting,
        "overrides": run.overrides,
        "run_ids": [],
        "seeds": [],
        "finished": 0,
        "failed": 0,
        "missing": 0,
        "selection": None,
      },
    )
    group["run_ids"].append(run.run_id)
    group["seeds"].append(run.seed)
    result = results.get(run.run_id, {})
    status = result.get("status", "missing")
    group[status if status in ("finished", "failed") else "missing"] += 1
    if status != "finished":
      continue
    group["selection"] = group["selection"] or result.get("selection")
    collected = values.setdefault(run.group_id, {})
    for prefix in ("validation", "test"):
      for name, value in result.get(prefix, {}).items():
        collected.setdefault(f"{prefix}/{name}", []).append(value)
  for group_id, group in groups.items():
    group["metrics"] = {name: summarize(v) for name, v in values.get(group_id, {}).items()}
  return list(groups.values())


def validation_key(group: Mapping[str, Any]) -> str | None:
  """The metric name under which a group's selection metric is summarised."""
  selection = group.get("selection")
  return f"validation/{selection['metric']}" if selection else None


def select_settings(groups: Sequence[Mapping[str, Any]]) -> list[dict]:
  """Per config, the group with the best mean validation value of the selection metric.

  Groups without a validation value are not compared; ties go to the earlier
  setting of the grid. Each entry names the config, the chosen group (None if
  no group could be compared) and how many settings were compared.
  """
  by_config: dict[str, list] = {}
  for group in groups:
    by_config.setdefault(group["config"], []).append(group)
  selected = []
  for config, candidates in by_config.items():
    selection = next((g["selection"] for g in candidates if g.get("selection")), None)
    scored = []
    for group in candidates:
      if group.get("selection") != selection or selection is None:
        continue
      mean = group["metrics"].get(validation_key(group), {}).get("mean")
      if mean is not None and math.isfinite(mean):
        scored.append((mean, group))
    best = None
    if scored:
      pick = max if selection["mode"] == "max" else min
      best = pick(scored, key=lambda item: item[0])[1]  # The first of equals: max/min keep it.
    selected.append(
      {
        "config": config,
        "config_name": candidates[0]["config_name"],
        "selection": selection,
        "settings": len(candidates),
        "settings_compared": len(scored),
        "group_id": None if best is None else best["group_id"],
        "setting": None if best is None else best["setting"],
        "metrics": {} if best is None else best["metrics"],
      }
    )
  return selected


def has_choices(groups: Sequence[Mapping[str, Any]]) -> bool:
  """Whether some config was run with more than one setting, so that selection means something."""
  configs = [g["config"] for g in groups]
  return len(set(configs)) < len(configs)


def found_test_metrics(groups: Sequence[Mapping[str, Any]]) -> list[str]:
  """Every test metric found, without its `test/` prefix, in order of appearance."""
  names = {}
  for group in groups:
    for name in group["metrics"]:
      if name.startswith("test/"):
        names.setdefault(name.removeprefix("test/"), None)
  return list(names)
