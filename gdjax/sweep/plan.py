"""The runs of a sweep: one per config, grid setting and seed, each checked against its config.

A run is one `gdjax train` and one `gdjax eval --split test --checkpoint best`
in its own workdir, `OUT/runs/<run_id>/`. Every override is checked twice
before anything starts: once with ml_collections' own type rules on the
config from the file (an unknown field or a value of the wrong type is named
with the config it fails in), and once by parsing the exact command-line
flags the run will get with `ml_collections.config_flags`, as `gdjax train`
parses them, so that what a run trains with is what the sweep says.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections
from absl import flags
from ml_collections import config_flags

from gdjax.errors import ConfigError
from gdjax.sweep import spec

RUNS_DIR = "runs"
MAX_ID_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclasses.dataclass(frozen=True)
class Run:
  """One run: what it trains, where, and the two commands that do it."""

  run_id: str
  group_id: str  # The run id without the seed: runs of one group differ only in their seed.
  config: str
  config_name: str
  seed: int
  setting: dict[str, Any]  # This run's grid values.
  overrides: dict[str, Any]  # Every override, as `gdjax train` will see it.
  workdir: str
  cwd: str
  total_steps: int | None
  task: str | None
  train_command: tuple[str, ...]
  eval_command: tuple[str, ...]

  def to_dict(self) -> dict:
    return {
      **dataclasses.asdict(self),
      "train_command": list(self.train_command),
      "eval_command": list(self.eval_command),
    }


def plan_runs(sweep: spec.Sweep, out: str | Path, *, python: str = sys.executable) -> list[Run]:
  """Every run of `sweep`, in the order configs x grid settings x seeds; raises ConfigError on a bad field."""
  out = Path(out).absolute()
  settings = grid_settings(sweep.grid)
  planned = []  # (config, setting, setting_texts, config after overrides, flags)
  sources = {"seed": "seeds", **{f: "overrides" for f in sweep.overrides}, **{f: "grid" for f in sweep.grid}}
  for config_path in sweep.configs:
    for field, text in sweep.flag_overrides.items():  # Alone first, so that an error names the one at fault.
      parse_flags(config_path, {field: text}, where=f"{config_path.name}: --set {field}={text}")
    for setting in settings:
      typed = {**sweep.overrides, **setting}
      parsed, texts = check_overrides(config_path, typed, sweep.flag_overrides, seed=sweep.seeds[0], sources=sources)
      planned.append((config_path, setting, {f: texts[f] for f in setting}, parsed, texts))

  group_ids = _group_ids([(str(c), texts) for c, _, texts, _, _ in planned], [c.stem for c, *_ in planned])
  runs = []
  for (config_path, setting, _, parsed, texts), group_id in zip(planned, group_ids):
    overrides = {field: to_json(get_field(parsed, field)) for field in texts if field != "seed"}
    flag_args = [f"--config.{field}={text}" for field, text in texts.items() if field != "seed"]
    for seed in sweep.seeds:
      run_id = f"{group_id}__seed{seed}"
      workdir = str(out / RUNS_DIR / run_id)
      gdjax = (python, "-m", "gdjax")
      runs.append(
        Run(
          run_id=run_id,
          group_id=group_id,
          config=str(config_path),
          config_name=config_path.stem,
          seed=seed,
          setting={field: to_json(get_field(parsed, field)) for field in setting},
          overrides=overrides,
          workdir=workdir,
          cwd=str(Path.cwd()),
          total_steps=parsed.get("total_steps"),
          task=parsed.get("task"),
          train_command=(
            *gdjax,
            "train",
            "--config",
            str(config_path),
            "--workdir",
            workdir,
            f"--config.seed={seed}",
            *flag_args,
          ),
          eval_command=(*gdjax, "eval", "--workdir", workdir, "--split", "test", "--checkpoint", "best"),
        )
      )
  return runs


def grid_settings(grid: Mapping[str, Sequence]) -> list[dict[str, Any]]:
  """The product of the grid's values, first field slowest: [{}] for an empty grid."""
  fields = list(grid)
  return [dict(zip(fields, values)) for values in itertools.product(*(grid[f] for f in fields))]


def load_config(path: str | Path) -> ml_collections.ConfigDict:
  """A config file's `get_config()`, as `gdjax train --config PATH` builds it before overrides."""
  module = spec.import_file(Path(path), "gdjax_sweep_config")
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"config file {path} has no get_config() function.")
  try:
    config = module.get_config()
  except Exception as e:
    raise ConfigError(f"config file {path}: get_config() raised {type(e).__name__}: {e}") from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"config file {path}: get_config() returned {type(config).__name__}, not a ConfigDict.")
  return config


def check_overrides(
  config_path: Path,
  typed: Mapping[str, Any],
  flag_texts: Mapping[str, str],
  *,
  seed: int,
  sources: Mapping[str, str] | None = None,
) -> tuple[ml_collections.ConfigDict, dict[str, str]]:
  """Checks the overrides of one run against its config.

  Returns the config that `gdjax train` will build from these flags, and the
  flag text of every override (seed first, then `typed`, then `flag_texts`,
  then progress_bar=False unless given). Raises ConfigError naming the field
  and where it came from (`sources`: field -> "grid", "overrides", ...).
  """
  sources = sources or {}
  config = load_config(config_path)
  config.lock()  # As `gdjax train` does: no new fields.
  typed = {"seed": seed, **typed}
  for field, value in typed.items():
    where = f"{config_path.name}: {sources.get(field, 'field')} {field}={value!r}"
    try:
      config.update_from_flattened_dict({field: value})
    except KeyError as e:
      raise ConfigError(f"{where}: no such field ({_message(e)}). Fields must exist in the config file.") from None
    except (TypeError, ValueError, AttributeError) as e:
      raise ConfigError(f"{where}: wrong type ({_message(e)}).") from None
  texts = {field: format_flag_value(get_field(config, field)) for field in typed}
  texts.update(flag_texts)
  if "progress_bar" in config and "progress_bar" not in texts:
    texts["progress_bar"] = "False"  # A run's log is a file, not a terminal.
  parsed = parse_flags(config_path, texts, where=f"{config_path.name} with the sweep's overrides")
  for field in typed:
    expected, got = to_json(get_field(config, field)), to_json(get_field(parsed, field))
    if not _same(expected, got):
      raise ConfigError(
        f"{config_path.name}: {sources.get(field, 'field')} {field}={typed[field]!r} does not survive the command line: the flag "
        f"--config.{field}={texts[field]} parses as {got!r}. Use a value of the field's own type."
      )
  return parsed, texts


def parse_flags(config_path: Path, texts: Mapping[str, str], *, where: str) -> ml_collections.ConfigDict:
  """The config `gdjax train --config PATH --config.FIELD=TEXT ...` would train with."""
  argv = ["gdjax train", "--config", str(config_path), *(f"--config.{f}={t}" for f, t in texts.items())]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True, sys_argv=argv)
  try:
    fv(argv)
    return fv.config
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError) as e:
    raise ConfigError(f"{where}: refused by the config's flag parser: {_message(e)}") from None


def format_flag_value(value: Any) -> str:
  """The text of `--config.FIELD=TEXT` that ml_collections' config_flags parses back to `value`."""
  if isinstance(value, ml_collections.ConfigDict):
    return repr(value.to_dict())
  if isinstance(value, (bool, int, str)):
    return str(value)  # Bools as True/False; strings plain, as the str flag parser takes them.
  if isinstance(value, float):
    return repr(value)  # The shortest text that parses back to the same float.
  if isinstance(value, list):
    return repr(tuple(value))
  return repr(value)


def get_field(config: Any, field: str) -> Any:
  """`config["a"]["b"]` for "a.b", for ConfigDicts and plain dicts alike; KeyError if absent."""
  value = config
  for key in field.split("."):
    value = value[key]
  return value


def to_json(value: Any) -> Any:
  """Tuples as lists and ConfigDicts as dicts, as in `config.json`."""
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {str(k): to_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_json(v) for v in value]
  return value


def write_plan(path: Path, sweep: spec.Sweep, runs: Sequence[Run], command: str) -> None:
  plan = {
    "command": command,
    "sweep": str(sweep.path),
    "configs": [str(c) for c in sweep.configs],
    "seeds": list(sweep.seeds),
    "grid": to_json(sweep.grid),
    "overrides": to_json(sweep.overrides),
    "set": dict(sweep.flag_overrides),
    "select": sweep.select,
    "report": None if sweep.report is None else list(sweep.report),
    "runs": [run.to_dict() for run in runs],
  }
  write_json(path, plan)


def write_json(path: Path, payload: Any) -> None:
  """Writes JSON atomically: a reader never sees half a file."""
  path = Path(path)
  partial = path.with_name(f".{path.name}.partial")
  partial.write_text(json.dumps(payload, indent=2, default=str) + "\n")
  partial.replace(path)


def _group_ids(descriptors: list[tuple[str, dict[str, str]]], stems: list[str]) -> list[str]:
  """Readable ids `<stem>__<field=value,...>`, made unique and short with a hash suffix where needed."""
  ids = []
  for (_, texts), stem in zip(descriptors, stems):
    label = ",".join(f"{field}={_UNSAFE.sub('-', text).strip('-')}" for field, text in texts.items())
    ids.append(f"{stem}__{label}" if label else stem)
  counts = {i: ids.count(i) for i in ids}
  for k, ((config, texts), readable) in enumerate(zip(descriptors, list(ids))):
    if counts[readable] > 1 or len(readable) > MAX_ID_LENGTH:
      digest = hashlib.sha256(json.dumps([config, texts], sort_keys=True).encode()).hexdigest()[:8]
      ids[k] = f"{readable[: MAX_ID_LENGTH - 9]}-{digest}"
  return ids


def _same(a: Any, b: Any) -> bool:
  if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
    return True
  if isinstance(a, bool) != isinstance(b, bool):
    return False
  if isinstance(a, list) and isinstance(b, list):
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
  return a == b


def _message(error: BaseException) -> str:
  """The error's own text on one line (KeyError's str() would quote it)."""
  return " ".join(str(error.args[0] if error.args else error).split())
