"""What a run's workdir says: finished or not, and its test and validation metrics.

A run is finished when `eval_test.json` exists, is newer than the run's
`metrics.jsonl`, and training reached the config's `total_steps` (the last
train record, or the newest checkpoint). Its test metrics are the numbers of
`eval_test.json` (every number but `step` and `seconds`, whatever its name);
its validation value is the selection metric in the `metrics.jsonl` eval
record at the step `eval_test.json` evaluated, the best checkpoint's.
Nothing here runs anything, so `--aggregate_only` and the launchers share it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gdjax.sweep.plan import Run, get_field, to_json, write_json

EVAL_FILE = "eval_test.json"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
RESULT_FILE = "result.json"
LOG_FILE = "log.txt"
NOT_METRICS = ("step", "seconds")
# Fields a resumed run may change: a longer run resumes a shorter one.
RESUMABLE_FIELDS = ("total_steps", "progress_bar")


def numeric_metrics(record: Mapping[str, Any]) -> dict[str, float]:
  """Every number of an eval record or eval_test.json except its step and duration."""
  return {
    k: v for k, v in record.items() if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)
  }


def read_jsonl(path: Path) -> list[dict]:
  """The records of a JSONL file; a last line cut short by a killed run is skipped."""
  if not Path(path).is_file():
    return []
  records = []
  for line in Path(path).read_text().splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return records


def trained_steps(workdir: Path) -> int | None:
  """How far training got: the last train record's step or the newest checkpoint, whichever is later."""
  steps = [r["step"] for r in read_jsonl(workdir / METRICS_FILE) if r.get("split") == "train" and "step" in r]
  checkpoints = workdir / CHECKPOINT_DIR
  if checkpoints.is_dir():
    steps += [int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()]
  return max(steps) if steps else None


def legacy_selection_metric(task: str | None) -> tuple[str, str] | None:
  """The validation metric of a `config.json` written before it held checkpoint.best_metric/best_mode.

  Those runs kept their best checkpoint by the task's own metric. Delete
  this function once no such workdirs remain.
  """
  return {"classifier": ("accuracy", "max"), "gan": ("fid", "min")}.get(task or "")


def selection_metric(config: Mapping[str, Any], select: Mapping[str, str] | None) -> tuple[str, str] | None:
  """(metric, "max" or "min") by which settings are compared: the sweep's `select`, else the run's
  checkpoint.best_metric/best_mode, else the task's old default."""
  if select:
    return select["metric"], select["mode"]
  checkpoint = config.get("checkpoint") or {}
  if checkpoint.get("best_metric"):
    return checkpoint["best_metric"], checkpoint.get("best_mode", "max")
  return legacy_selection_metric(config.get("task"))


def read_config(workdir: Path) -> dict:
  path = Path(workdir) / CONFIG_FILE
  try:
    return json.loads(path.read_text()) if path.is_file() else {}
  except json.JSONDecodeError:
    return {}


def config_mismatches(run: Run, config: Mapping[str, Any]) -> list[str]:
  """The overrides (and seed) of `run` that the workdir's config.json disagrees with."""
  expected = {"seed": run.seed, **run.overrides}
  mismatches = []
  for field, value in expected.items():
    if field in RESUMABLE_FIELDS:
      continue
    try:
      found = to_json(get_field(config, field))
    except (KeyError, TypeError):
      continue  # A field the config no longer writes: nothing to compare.
    if found != value and not (_is_nan(found) and _is_nan(value)):
      mismatches.append(f"{field}={json.dumps(found)} (the sweep asks {json.dumps(value)})")
  return mismatches


def assess(run: Run, select: Mapping[str, str] | None) -> dict:
  """The result of `run` as its workdir stands, without running anything.

  status "finished": read from the workdir. "failed": the last attempt
  failed (from result.json), or the workdir holds a run this sweep must not
  touch (`conflict`: another setting, or more steps than asked). "missing":
  not run yet, or interrupted; running its commands again resumes it.
  """
  workdir = Path(run.workdir)
  base = describe(run)
  config = read_config(workdir)
  if config:
    mismatches = config_mismatches(run, config)
    if mismatches:
      return {
        **base,
        "status": "failed",
        "conflict": True,
        "error": f"{workdir} holds a run with {'; '.join(mismatches)}. Use another --out, or delete that "
        "directory to train it again.",
      }
  steps = trained_steps(workdir)
  if run.total_steps is not None and steps is not None and steps > run.total_steps:
    return {
      **base,
      "status": "failed",
      "conflict": True,
      "error": f"{workdir} was trained for {steps} steps, more than this sweep's total_steps={run.total_steps}. "
      "Use another --out, or delete that directory to train it again.",
    }
  if is_finished(workdir, run.total_steps, steps):
    previous = read_result(workdir)
    timing = {k: previous[k] for k in ("train_seconds", "eval_seconds") if k in previous}
    return {**base, **timing, **read_metrics(workdir, config, select), "status": "finished"}
  previous = read_result(workdir)
  if previous.get("status") == "failed" and not previous.get("conflict"):
    return {**previous, **base, "status": "failed"}
  return {**base, "status": "missing", "trained_steps": steps}


def is_finished(workdir: Path, total_steps: int | None, steps: int | None = None) -> bool:
  evaluation, metrics = workdir / EVAL_FILE, workdir / METRICS_FILE
  if not evaluation.is_file():
    return False
  if metrics.is_file() and evaluation.stat().st_mtime < metrics.stat().st_mtime:
    return False  # Trained further since that evaluation.
  steps = trained_steps(workdir) if steps is None else steps
  return total_steps is None or steps == total_steps


def read_metrics(workdir: Path, config: Mapping[str, Any], select: Mapping[str, str] | None) -> dict:
  """Test metrics, the validation value of the selection metric, and the evaluated step."""
  evaluation = json.loads((workdir / EVAL_FILE).read_text())
  step = evaluation.get("step")
  selection = selection_metric(config, select)
  validation = {}
  if selection is not None:
    at_step = [r for r in read_jsonl(workdir / METRICS_FILE) if r.get("split") == "eval" and r.get("step") == step]
    value = numeric_metrics(at_step[-1]).get(selection[0]) if at_step else None
    if value is not None:
      validation[selection[0]] = value
  return {
    "step": step,
    "test": numeric_metrics(evaluation),
    "validation": validation,
    "selection": None if selection is None else {"metric": selection[0], "mode": selection[1]},
    "protocol": {k: v for k, v in evaluation.items() if isinstance(v, str)},
  }


def describe(run: Run) -> dict:
  """The fields every result of `run` starts with."""
  return {
    "run_id": run.run_id,
    "group_id": run.group_id,
    "config": run.config,
    "seed": run.seed,
    "setting": run.setting,
    "workdir": run.workdir,
    "log": str(Path(run.workdir) / LOG_FILE),
  }


def read_result(workdir: Path) -> dict:
  path = Path(workdir) / RESULT_FILE
  try:
    return json.loads(path.read_text()) if path.is_file() else {}
  except json.JSONDecodeError:
    return {}


def write_result(run: Run, result: Mapping[str, Any]) -> Path:
  path = Path(run.workdir) / RESULT_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  write_json(path, dict(result))
  return path


def _is_nan(value: Any) -> bool:
  return isinstance(value, float) and math.isnan(value)
