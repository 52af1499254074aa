"""`gdjax sweep`: runs a grid of configs x settings x seeds and writes the comparison tables.

  gdjax sweep --sweep configs/sweeps/classifiers.py --out workdirs/sweeps/classifiers
              [--parallel N] [--launcher local|ray] [--ray_address ADDRESS]
              [--seeds 0,1,2] [--set FIELD=VALUE ...] [--print_commands | --aggregate_only]

(`python -m gdjax.sweep ...` until `gdjax sweep` is registered.) Each run is
`gdjax train` then `gdjax eval --split test --checkpoint best` in
OUT/runs/<run_id>/, with the output of both in its log.txt and the result in
its result.json. Finished runs are read, never retrained; interrupted ones
resume from their checkpoints, so running the same command again completes
a sweep. OUT/sweep.json is the plan; OUT/results.md, results.csv, runs.csv,
results.json and plots/ are the outcome.

A bad sweep (an unknown config, field or key, a value of the wrong type, no
seeds) is refused with exit status 2 before anything is written. Runs that
fail are recorded and the others go on; the status is then 1, after the
tables are written.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from absl import flags

from gdjax.errors import ConfigError, GdjaxError

USAGE = __doc__
FLAG_NAMES = (
  "sweep",
  "out",
  "parallel",
  "launcher",
  "ray_address",
  "seeds",
  "set",
  "print_commands",
  "aggregate_only",
)


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  """Defines the flags of `gdjax sweep` on `fv` (`argv` is unused: no config flags here)."""
  del argv
  flags.DEFINE_string("sweep", None, "Sweep definition file, e.g. configs/sweeps/classifiers.py.", flag_values=fv)
  flags.DEFINE_string(
    "out", None, "Directory for the runs (OUT/runs/<run_id>/) and the results (OUT/results.md, ...).", flag_values=fv
  )
  flags.DEFINE_integer(
    "parallel",
    1,
    "Runs at once: local processes (--launcher local), or the CPUs of the local Ray instance (--launcher ray).",
    lower_bound=1,
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "launcher",
    "local",
    ["local", "ray"],
    "local: subprocesses on this machine. ray: one Ray task per run (pip install 'gdjax[ray]'), on a local Ray "
    "instance kept on 127.0.0.1, or on the cluster at --ray_address.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "ray_address",
    None,
    "With --launcher ray: the address of an existing Ray cluster (e.g. ray://head:10001 or head:6379). Every node "
    "must see --out at the same path (a shared filesystem): the runs write their workdirs and logs there.",
    flag_values=fv,
  )
  flags.DEFINE_list("seeds", None, "Seeds to run instead of the sweep file's, e.g. 0,1,2.", flag_values=fv)
  flags.DEFINE_multi_string(
    "set",
    [],
    "FIELD=VALUE: an override for every run, after the sweep file's (repeatable), e.g. --set total_steps=300. "
    "Parsed and checked as `gdjax train --config.FIELD=VALUE` would be.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "print_commands",
    False,
    "Print one shell command per run (train && eval) for a batch system, and run nothing. Running the sweep "
    "command again afterwards finds those runs finished and writes the tables.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "aggregate_only", False, "Run nothing: read the finished runs in --out and write the tables.", flag_values=fv
  )


def run(fv: flags.FlagValues) -> int:
  """Runs the sweep (or prints its commands); returns 1 if any run failed, else 0."""
  from gdjax.sweep import aggregate, launchers, plan, plots, report, spec
  from gdjax.sweep import runs as runs_lib

  missing = [f"--{name}" for name in ("sweep", "out") if not fv[name].value]
  if missing:
    raise ConfigError(f"missing required flag(s) {', '.join(missing)}, e.g. --sweep configs/sweeps/smoke.py --out DIR.")
  if fv.print_commands and fv.aggregate_only:
    raise ConfigError("--print_commands and --aggregate_only exclude each other; pass one of them.")
  if fv.ray_address and fv.launcher != "ray":
    raise ConfigError("--ray_address needs --launcher ray.")
  if fv.launcher == "ray" and not (fv.print_commands or fv.aggregate_only):
    from gdjax.sweep import ray_launcher

    ray_launcher.require_ray()  # Before anything is written.
  seeds = _parse_seeds(fv.seeds)
  sweep = spec.load_sweep(fv.sweep, seeds=seeds, set_flags=fv.set)
  out = Path(fv.out).absolute()
  runs = plan.plan_runs(sweep, out)  # Every check passes before anything is written.
  if fv.print_commands:
    for r in runs:
      print(launchers.shell_command(r))
    return 0

  start = time.perf_counter()
  command = command_line(fv)
  out.mkdir(parents=True, exist_ok=True)
  plan.write_plan(out / "sweep.json", sweep, runs, command)
  results = {r.run_id: runs_lib.assess(r, sweep.select) for r in runs}
  if not fv.aggregate_only:
    todo = [r for r in runs if results[r.run_id]["status"] != "finished" and not results[r.run_id].get("conflict")]
    finished = sum(result["status"] == "finished" for result in results.values())
    print(f"{len(runs)} runs in {out}: {finished} finished already, {len(todo)} to run.", flush=True)
    for r in runs:
      if results[r.run_id].get("conflict"):  # Left as it is: reported in the tables, not written into.
        print(f"  {r.run_id}: refused: {results[r.run_id]['error']}", flush=True)
    for done, (r, result) in enumerate(_launch(fv, todo, sweep.select), start=1):
      runs_lib.write_result(r, result)
      results[r.run_id] = result
      print(f"[{done}/{len(todo)}] {r.run_id}: {_describe(result)}", flush=True)

  groups = aggregate.group_results(runs, results)
  selected = aggregate.select_settings(groups)
  paths = report.write_reports(
    out, command=command, runs=runs, results=results, groups=groups, selected=selected, report=sweep.report
  )
  metrics = report.report_metrics(sweep.report, groups)
  selection_metrics = [g["selection"]["metric"] for g in groups if g.get("selection")]
  paths += plots.write_plots(
    out, runs, results, groups, validation_metrics=[*selection_metrics, *metrics], test_metrics=metrics
  )
  failed = [r for r in results.values() if r["status"] == "failed"]
  not_run = [r for r in results.values() if r["status"] == "missing"]
  print((out / report.RESULTS_MD).read_text())
  print("Wrote " + ", ".join(str(p.relative_to(out)) for p in paths) + f" in {out}")
  print(f"gdjax sweep: {len(runs)} runs; {time.perf_counter() - start:.0f} s.")
  if not_run:
    print(f"{len(not_run)} run(s) have not finished; run the same command without --aggregate_only to run them.")
  if failed:
    print(f"{len(failed)} run(s) failed; their logs are listed in {out / report.RESULTS_MD}.", file=sys.stderr)
    return 1
  return 0


def command_line(fv: flags.FlagValues) -> str:
  """The command as given (the flags that were set), for the top of results.md.

  Written as `gdjax sweep ...`, the same as `python -m gdjax.sweep ...`; gdjax.cli is not imported to ask,
  since it imports this module.
  """
  words = ["gdjax", "sweep"]
  for name in FLAG_NAMES:
    flag = fv[name]
    if not flag.present:
      continue
    if name == "set":
      words += [f"--set={value}" for value in flag.value]
    elif isinstance(flag.value, bool):
      words.append(f"--{'' if flag.value else 'no'}{name}")
    elif isinstance(flag.value, list):
      words.append(f"--{name}={','.join(flag.value)}")
    else:
      words.append(f"--{name}={flag.value}")
  return shlex.join(words)


def _launch(fv: flags.FlagValues, todo: Sequence, select) -> Iterator:
  from gdjax.sweep import launchers

  if not todo:
    return iter(())
  if fv.launcher == "ray":
    from gdjax.sweep import ray_launcher

    return ray_launcher.run_on_ray(todo, select, address=fv.ray_address, num_cpus=fv.parallel)
  environment = launchers.local_environment()
  return launchers.run_local(todo, lambda r: launchers.execute_run(r, select, environment), parallel=fv.parallel)


def _describe(result: dict) -> str:
  if result["status"] == "finished":
    seconds = result.get("train_seconds", 0) + result.get("eval_seconds", 0)
    return f"finished in {seconds:.0f} s"
  return f"FAILED: {result.get('error', '')}"


def _parse_seeds(values: list[str] | None) -> tuple[int, ...] | None:
  if values is None:
    return None
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ConfigError(f"--seeds must be comma-separated integers, e.g. 0,1,2; got {','.join(values)}.") from None


def main(argv: list[str] | None = None) -> int:
  """`python -m gdjax.sweep ARGS`: the same as `gdjax sweep ARGS`."""
  argv = list(sys.argv if argv is None else argv)
  command_argv = ["gdjax sweep", *argv[1:]]
  fv = flags.FlagValues()
  define_flags(fv, command_argv)
  if any(a in ("-h", "--help", "--helpfull") for a in argv[1:]):
    print(USAGE)
    print(fv.get_help())
    return 0
  try:
    fv(command_argv)
  except flags.Error as e:
    print(f"gdjax sweep: {e}. Run `gdjax sweep --help` to list the flags.", file=sys.stderr)
    return 2
  try:
    return run(fv)
  except GdjaxError as e:
    print(f"gdjax sweep: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("gdjax sweep: interrupted; run the same command again to resume.", file=sys.stderr)
    return 130


def entry_point() -> None:
  sys.exit(main())
