"""The sweep's outputs: results.md for people, results.csv and runs.csv for spreadsheets, results.json for code.

results.md starts with the command that produced it and the date and
machine, then a table of every group ("mean ± sd (n)" over seeds, and how
many runs failed), then, when a config was run with several settings, the
table of the setting chosen on validation with its test metrics, and the
failed runs with their logs. The CSV and JSON files hold every metric, per
group and per run, at full precision.
"""

from __future__ import annotations

import csv
import datetime
import importlib.metadata
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gdjax.sweep import aggregate
from gdjax.sweep.plan import Run, write_json

RESULTS_MD, RESULTS_CSV, RUNS_CSV, RESULTS_JSON = "results.md", "results.csv", "runs.csv", "results.json"


def machine_description() -> str:
  """CPU model (from /proc/cpuinfo), core count, Python and jax versions: enough to compare timings."""
  cpu = platform.processor() or platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  try:
    jax = f", jax {importlib.metadata.version('jax')}"
  except importlib.metadata.PackageNotFoundError:
    jax = ""
  return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}{jax}"


def format_summary(summary: Mapping[str, Any] | None) -> str:
  """ "mean ± sd (n)", "mean (1)" for one seed, "–" for none."""
  if not summary or not summary.get("n"):
    return "–"
  text = _number(summary["mean"])
  if summary.get("sd") is not None:
    text += f" ± {_number(summary['sd'])}"
  return f"{text} ({summary['n']})"


def format_setting(setting: Mapping[str, Any] | None) -> str:
  return ", ".join(f"{field}={value}" for field, value in (setting or {}).items()) or "(config as is)"


def report_metrics(report: Sequence[str] | None, groups: Sequence[Mapping[str, Any]]) -> list[str]:
  """The test metrics of the Markdown tables: the sweep's `report`, else every numeric test metric found."""
  return list(report) if report is not None else aggregate.found_test_metrics(groups)


def markdown(
  *,
  command: str,
  groups: Sequence[Mapping[str, Any]],
  selected: Sequence[Mapping[str, Any]],
  results: Mapping[str, Mapping[str, Any]],
  metrics: Sequence[str],
  when: str,
  machine: str,
) -> str:
  validation = _validation_columns(groups)
  lines = [
    "# Sweep results",
    "",
    f"Command: `{command}`",
    "",
    f"Run {when} on {machine}.",
    "",
    "Each cell: mean ± sample standard deviation (number of seeds), over the runs that finished. "
    "Validation: the selection metric on the validation split, at the checkpoint that was tested.",
    "",
    "## Every setting",
    "",
  ]
  header = ["config", "setting", "finished", "failed", *(f"validation {m}" for m in validation)]
  header += [f"test {m}" for m in metrics]
  rows = []
  for group in groups:
    row = [group["config_name"], format_setting(group["setting"]), f"{group['finished']}/{len(group['run_ids'])}"]
    row += [str(group["failed"])]
    row += [format_summary(group["metrics"].get(f"validation/{m}")) for m in validation]
    row += [format_summary(group["metrics"].get(f"test/{m}")) for m in metrics]
    rows.append(row)
  lines += markdown_table(header, rows)
  if aggregate.has_choices(groups):
    lines += [
      "",
      "## Selected on validation",
      "",
      "Per config, the setting with the best mean validation value; its test metrics are reported as they are.",
      "",
    ]
    header = ["config", "selected setting", "settings compared", "selected by", "validation", *metrics]
    rows = []
    for entry in selected:
      selection = entry["selection"]
      by = f"{selection['mode']} {selection['metric']}" if selection else "–"
      key = f"validation/{selection['metric']}" if selection else ""
      row = [entry["config_name"], format_setting(entry["setting"]) if entry["group_id"] else "(none finished)"]
      row += [f"{entry['settings_compared']} of {entry['settings']}", by, format_summary(entry["metrics"].get(key))]
      row += [format_summary(entry["metrics"].get(f"test/{m}")) for m in metrics]
      rows.append(row)
    lines += markdown_table(header, rows)
  failed = [r for r in results.values() if r.get("status") == "failed"]
  missing = [r for r in results.values() if r.get("status") not in ("finished", "failed")]
  if failed:
    lines += ["", f"## Failed runs ({len(failed)})", ""]
    for r in failed:
      error = r.get("error", "failed.")
      lines.append(f"- `{r['run_id']}`: {error}" + ("" if r.get("log", "") in error else f" Log: `{r.get('log')}`"))
  if missing:
    lines += ["", f"Not run yet ({len(missing)}): " + ", ".join(f"`{r['run_id']}`" for r in missing)]
  return "\n".join(lines) + "\n"


def write_reports(
  out: Path,
  *,
  command: str,
  runs: Sequence[Run],
  results: Mapping[str, Mapping[str, Any]],
  groups: Sequence[Mapping[str, Any]],
  selected: Sequence[Mapping[str, Any]],
  report: Sequence[str] | None,
) -> list[Path]:
  """Writes results.md, results.csv, runs.csv and results.json into `out`; returns their paths."""
  when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
  machine = machine_description()
  metrics = report_metrics(report, groups)
  paths = [out / RESULTS_MD, out / RESULTS_CSV, out / RUNS_CSV, out / RESULTS_JSON]
  text = markdown(
    command=command, groups=groups, selected=selected, results=results, metrics=metrics, when=when, machine=machine
  )
  paths[0].write_text(text)
  _write_groups_csv(paths[1], groups)
  _write_runs_csv(paths[2], runs, results)
  write_json(
    paths[3],
    {
      "command": command,
      "date": when,
      "machine": machine,
      "report": metrics,
      "groups": groups,
      "selected": selected,
      "runs": [results[run.run_id] for run in runs],
    },
  )
  return paths


def _validation_columns(groups: Sequence[Mapping[str, Any]]) -> list[str]:
  names = {}
  for group in groups:
    if group.get("selection"):
      names.setdefault(group["selection"]["metric"], None)
  return list(names)


def _write_groups_csv(path: Path, groups: Sequence[Mapping[str, Any]]) -> None:
  fields = list(dict.fromkeys(f for g in groups for f in g["setting"]))
  metrics = list(dict.fromkeys(m for g in groups for m in g["metrics"]))
  header = ["group_id", "config", *fields, "runs", "finished", "failed", "missing"]
  header += [f"{m} {stat}" for m in metrics for stat in ("mean", "sd", "n")]
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    for g in groups:
      row = [g["group_id"], g["config_name"], *(_cell(g["setting"].get(field)) for field in fields)]
      row += [len(g["run_ids"]), g["finished"], g["failed"], g["missing"]]
      for m in metrics:
        summary = g["metrics"].get(m, {})
        row += [_cell(summary.get(stat)) for stat in ("mean", "sd", "n")]
      writer.writerow(row)


def _write_runs_csv(path: Path, runs: Sequence[Run], results: Mapping[str, Mapping[str, Any]]) -> None:
  fields = list(dict.fromkeys(f for run in runs for f in run.setting))
  metrics = list(
    dict.fromkeys(
      f"{prefix}/{name}" for r in results.values() for prefix in ("validation", "test") for name in r.get(prefix, {})
    )
  )
  header = ["run_id", "group_id", "config", *fields, "seed", "status", "step", *metrics, "log"]
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    for run in runs:
      r = results[run.run_id]
      row = [run.run_id, run.group_id, run.config_name, *(_cell(run.setting.get(field)) for field in fields)]
      row += [run.seed, r.get("status"), _cell(r.get("step"))]
      row += [_cell(r.get(m.split("/", 1)[0], {}).get(m.split("/", 1)[1])) for m in metrics]
      writer.writerow([*row, r.get("log", "")])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  """The lines of a Markdown table (pipes in cells escaped)."""
  escape = lambda cell: str(cell).replace("|", "\\|")
  lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
  return lines + ["| " + " | ".join(map(escape, row)) + " |" for row in rows]


def _number(value: float) -> str:
  return f"{value:.4g}"


def _cell(value: Any) -> Any:
  """CSV cells: None blank, floats at full precision (repr), lists as text."""
  if value is None:
    return ""
  if isinstance(value, float):
    return repr(value)
  return value
