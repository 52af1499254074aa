"""A sweep definition file: loaded, and its shape checked before anything runs.

A sweep file is a Python file under `configs/sweeps/` whose `get_sweep()`
returns a dict: `configs`, `seeds`, and optionally `grid`, `overrides`,
`select` and `report` (see `configs/sweeps/smoke.py`). `load_sweep` imports
it and checks everything that needs no config: known keys, non-empty
integer seeds, grid values given as tuples, config files that exist. Whether
each field exists in each config and takes its value is checked by
`plan.plan_runs`, which loads the configs. Both raise `ConfigError` naming
the offending item before any directory is created, so a typo costs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from gdjax.errors import ConfigError

SWEEP_KEYS = ("configs", "seeds", "grid", "overrides", "select", "report")
REQUIRED_KEYS = ("configs", "seeds")
SELECT_KEYS = ("metric", "mode")
SELECT_MODES = ("max", "min")
# The checkout's configs/: bare config names in a sweep file are looked up here first.
CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A checked sweep definition. `overrides` hold Python values from the file;
  `flag_overrides` the text of --set FIELD=VALUE, parsed later as `gdjax train` parses it."""

  path: Path
  configs: tuple[Path, ...]
  seeds: tuple[int, ...]
  grid: dict[str, tuple]
  overrides: dict[str, Any]
  flag_overrides: dict[str, str]
  select: dict[str, str] | None
  report: tuple[str, ...] | None


def load_sweep(path: str | Path, *, seeds: Sequence[int] | None = None, set_flags: Sequence[str] = ()) -> Sweep:
  """Imports a sweep file and checks its definition.

  Args:
    path: the sweep file, e.g. configs/sweeps/classifiers.py.
    seeds: replaces the file's seeds (the --seeds flag).
    set_flags: "FIELD=VALUE" strings (the --set flag): fixed overrides for every
      run, taking precedence over the file's `overrides`.
  """
  path = Path(path)
  if not path.is_file():
    raise ConfigError(f"sweep file {path} does not exist. Pass --sweep configs/sweeps/<name>.py.")
  module = import_file(path, "gdjax_sweep")
  get_sweep = getattr(module, "get_sweep", None)
  if not callable(get_sweep):
    raise ConfigError(f"{path} has no get_sweep() function. Define one returning dict(configs=..., seeds=..., ...).")
  try:
    definition = get_sweep()
  except Exception as e:
    raise ConfigError(f"{path}: get_sweep() raised {type(e).__name__}: {e}") from e
  if not isinstance(definition, Mapping):
    raise ConfigError(f"{path}: get_sweep() must return a dict, not {type(definition).__name__}.")
  unknown = [key for key in definition if key not in SWEEP_KEYS]
  if unknown:
    raise ConfigError(
      f"{path}: get_sweep() returned unknown key(s) {', '.join(map(repr, unknown))}; the keys are {', '.join(SWEEP_KEYS)}."
    )
  missing = [key for key in REQUIRED_KEYS if key not in definition]
  if missing:
    raise ConfigError(f"{path}: get_sweep() must give {' and '.join(missing)}.")

  names = _strings(definition["configs"], f"{path}: configs")
  configs = tuple(resolve_config(name, path) for name in names)
  if len(set(configs)) != len(configs):
    raise ConfigError(f"{path}: configs lists the same config file twice.")
  seeds = check_seeds(definition["seeds"], f"{path}: seeds") if seeds is None else check_seeds(seeds, "--seeds")
  grid = _grid(definition.get("grid") or {}, path)
  overrides = _fields(definition.get("overrides") or {}, f"{path}: overrides")
  flag_overrides = parse_set_flags(set_flags)
  for field in grid:
    if field in overrides:
      raise ConfigError(f"{path}: field {field!r} is in both grid and overrides; keep it in one of them.")
    if field in flag_overrides:
      raise ConfigError(f"--set {field}=... conflicts with the grid field {field!r} of {path}; drop one of them.")
  overrides = {field: value for field, value in overrides.items() if field not in flag_overrides}
  return Sweep(
    path=path.resolve(),
    configs=configs,
    seeds=seeds,
    grid=grid,
    overrides=overrides,
    flag_overrides=flag_overrides,
    select=_select(definition.get("select"), path),
    report=None if definition.get("report") is None else _strings(definition["report"], f"{path}: report"),
  )


def single_config_sweep(
  config: Path,
  seeds: Sequence[int],
  *,
  grid: Mapping[str, tuple] | None = None,
  overrides: Mapping[str, Any] | None = None,
  set_flags: Sequence[str] = (),
) -> Sweep:
  """A sweep of one config built in code (for commands that chain sweeps), checked as a sweep file is.

  `set_flags` ("FIELD=VALUE", the user's --set) may not touch a field the
  command sets itself in `grid` or `overrides`.
  """
  flag_overrides = parse_set_flags(set_flags)
  fixed = {**(overrides or {}), **(grid or {})}
  clashes = sorted(set(flag_overrides) & set(fixed))
  if clashes:
    raise ConfigError(f"--set {', '.join(clashes)}: set by this command itself; drop it from --set.")
  return Sweep(
    path=Path(config).resolve(),
    configs=(Path(config).resolve(),),
    seeds=check_seeds(tuple(seeds), "--seeds"),
    grid={field: tuple(values) for field, values in (grid or {}).items()},
    overrides=_fields(dict(overrides or {}), "overrides"),
    flag_overrides=flag_overrides,
    select=None,
    report=None,
  )


def import_file(path: Path, prefix: str) -> ModuleType:
  """Imports a Python file under a module name of its own (two files of one stem do not collide)."""
  digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:8]
  spec = importlib.util.spec_from_file_location(f"{prefix}_{Path(path).stem}_{digest}", path)
  if spec is None or spec.loader is None:
    raise ConfigError(f"{path} is not a Python file that can be imported.")
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:
    raise ConfigError(f"{path} failed to import: {type(e).__name__}: {e}") from e
  return module


def resolve_config(name: str, sweep_path: Path) -> Path:
  """`mlp_fashion_mnist` -> configs/mlp_fashion_mnist.py; a path ending in .py is taken relative to the
  current directory, then to the sweep file's."""
  if name.endswith(".py") or "/" in name:
    given = Path(name)
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, Path(sweep_path).parent / given]
  else:
    candidates = [CONFIGS_DIR / f"{name}.py", Path.cwd() / "configs" / f"{name}.py"]
  candidates = list(dict.fromkeys(c.absolute() for c in candidates))
  for candidate in candidates:
    if candidate.is_file():
      return candidate.resolve()
  raise ConfigError(
    f"{sweep_path}: unknown config {name!r}: there is no {' or '.join(map(str, candidates))}. Name a file of "
    "configs/ without .py (e.g. 'mlp_fashion_mnist') or give the path of a .py config file."
  )


def check_seeds(seeds: Any, where: str) -> tuple[int, ...]:
  if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
    raise ConfigError(f"{where} must be a tuple of integers, e.g. (0, 1, 2); got {seeds!r}.")
  if not seeds:
    raise ConfigError(f"{where} is empty; give at least one seed, e.g. (0,).")
  bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)]
  if bad:
    raise ConfigError(f"{where} must be integers; {bad[0]!r} is not.")
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f"{where} lists a seed twice: {tuple(seeds)}.")
  return tuple(seeds)


def parse_set_flags(items: Sequence[str]) -> dict[str, str]:
  """["total_steps=300", ...] -> {"total_steps": "300"}: the text after the first '='."""
  parsed = {}
  for item in items or ():
    field, sep, text = item.partition("=")
    field = field.strip()
    if not sep:
      raise ConfigError(f"--set {item!r} has no '='; write --set FIELD=VALUE, e.g. --set total_steps=300.")
    _check_field(field, f"--set {item!r}")
    if field in parsed:
      raise ConfigError(f"--set gives {field!r} twice; give it once.")
    parsed[field] = text
  return parsed


def _check_field(field: Any, where: str) -> None:
  if not isinstance(field, str) or not _FIELD.fullmatch(field):
    raise ConfigError(f"{where}: {field!r} is not a config field name like 'optimizer.learning_rate'.")
  if field == "seed":
    raise ConfigError(f"{where}: the seed is not an override; list seeds in the sweep's seeds (or --seeds).")


def _strings(values: Any, where: str) -> tuple[str, ...]:
  if isinstance(values, str) or not isinstance(values, Sequence) or not values:
    raise ConfigError(f"{where} must be a non-empty tuple of strings, e.g. ('mlp_fashion_mnist',); got {values!r}.")
  bad = [v for v in values if not isinstance(v, str) or not v]
  if bad:
    raise ConfigError(f"{where} must hold non-empty strings; {bad[0]!r} is not one.")
  return tuple(values)


def _fields(mapping: Any, where: str) -> dict[str, Any]:
  if not isinstance(mapping, Mapping):
    raise ConfigError(f"{where} must be a dict of field -> value; got {type(mapping).__name__}.")
  for field in mapping:
    _check_field(field, where)
  return dict(mapping)


def _grid(grid: Any, path: Path) -> dict[str, tuple]:
  checked = {}
  for field, values in _fields(grid, f"{path}: grid").items():
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
      raise ConfigError(
        f"{path}: grid[{field!r}] must be a tuple of values, e.g. (1e-3, 3e-3); got {values!r}. A single value "
        "belongs in overrides."
      )
    if not values:
      raise ConfigError(f"{path}: grid[{field!r}] is empty; give at least one value.")
    if any(values[i] == values[j] for i in range(len(values)) for j in range(i)):
      raise ConfigError(f"{path}: grid[{field!r}] lists a value twice: {tuple(values)!r}.")
    checked[field] = tuple(values)
  return checked


def _select(select: Any, path: Path) -> dict[str, str] | None:
  if select is None:
    return None
  if not isinstance(select, Mapping):
    raise ConfigError(f"{path}: select must be dict(metric=..., mode='max' or 'min'); got {select!r}.")
  unknown = [key for key in select if key not in SELECT_KEYS]
  if unknown:
    raise ConfigError(f"{path}: select has unknown key(s) {', '.join(map(repr, unknown))}; its keys are metric, mode.")
  metric, mode = select.get("metric"), select.get("mode")
  if not isinstance(metric, str) or not metric:
    raise ConfigError(f"{path}: select needs a metric name, e.g. select=dict(metric='accuracy', mode='max').")
  if mode not in SELECT_MODES:
    raise ConfigError(f"{path}: select mode must be 'max' or 'min'; got {mode!r}.")
  return {"metric": metric, "mode": mode}
