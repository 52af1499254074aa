"""Running runs: the two commands of one run, local processes in parallel, and shell commands for batch systems.

`execute_run` is the whole of what a worker does, wherever it runs: append
both commands' output to the run's `log.txt`, run `gdjax train` (which
resumes from the workdir's checkpoints), then `gdjax eval --checkpoint best`,
and read the result back from the workdir. The local launcher runs it in a
thread pool, one subprocess per run at a time per thread; the Ray launcher
(`ray_launcher.py`) runs it as a Ray task. Either way the driver writes the
result files, so the two launchers share everything but the transport.
"""

from __future__ import annotations

import concurrent.futures
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from gdjax.sweep import runs as runs_lib
from gdjax.sweep.plan import Run

LOG_TAIL_CHARS = 2000


def execute_run(run: Run, select: Mapping[str, str] | None, environment: Mapping[str, str] | None = None) -> dict:
  """Trains and evaluates `run` (resuming whatever its workdir holds) and returns its result.

  `environment` is the commands' environment (default: this process's).
  A command that exits non-zero makes a "failed" result that names it, its
  return code and the log; the other command is not run after a failed train.
  """
  workdir = Path(run.workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  log_path = workdir / runs_lib.LOG_FILE
  result = {**runs_lib.describe(run), "host": socket.gethostname()}
  cwd = run.cwd if Path(run.cwd).is_dir() else None
  for name, command in (("train", run.train_command), ("eval", run.eval_command)):
    start = time.perf_counter()
    with open(log_path, "a") as log:
      log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} on {result['host']}: {shlex.join(command)}\n")
      log.flush()
      returncode = subprocess.run(
        command, stdout=log, stderr=subprocess.STDOUT, env=None if environment is None else dict(environment), cwd=cwd
      ).returncode
    result[f"{name}_seconds"] = round(time.perf_counter() - start, 2)
    if returncode != 0:
      return {
        **result,
        "status": "failed",
        "failed_command": name,
        "returncode": returncode,
        "error": f"`gdjax {name}` exited with status {returncode}; see {log_path}.",
        "log_tail": _tail(log_path),
      }
  assessed = runs_lib.assess(run, select)
  if assessed["status"] != "finished":
    return {
      **assessed,
      **result,
      "status": "failed",
      "error": assessed.get("error")
      or f"both commands exited 0 but the run is not finished (trained to step {assessed.get('trained_steps')} "
      f"of {run.total_steps}; stopped by SIGTERM?). Run the sweep again to resume it.",
    }
  return {**assessed, **result}


def run_local(runs: Sequence[Run], execute: Callable[[Run], dict], *, parallel: int) -> Iterator[tuple[Run, dict]]:
  """Runs `execute(run)` for every run, `parallel` at a time, yielding (run, result) as each ends."""
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="gdjax-sweep")
  try:
    futures = {pool.submit(execute, run): run for run in runs}
    for future in concurrent.futures.as_completed(futures):
      yield futures[future], future.result()
  finally:
    pool.shutdown(wait=True, cancel_futures=True)


def run_pending(
  runs: Sequence[Run], *, parallel: int, select: Mapping[str, str] | None = None, log=print
) -> dict[str, dict]:
  """Runs those of `runs` that have not finished, locally, `parallel` at a time; returns every result by workdir.

  The local launcher of `gdjax sweep` as a library call, for commands that
  chain sweeps (`gdjax cas`, `gdjax augment`): finished runs are read, never
  retrained; interrupted ones resume; a workdir holding another run is left
  alone and reported. Each result is also written to its run's result.json.
  Results are keyed by workdir, not run id: runs of one config planned into
  several directories share their ids.
  """
  results = {r.workdir: runs_lib.assess(r, select) for r in runs}
  todo = [r for r in runs if results[r.workdir]["status"] != "finished" and not results[r.workdir].get("conflict")]
  log(f"{len(runs)} runs: {len(runs) - len(todo)} finished or refused already, {len(todo)} to run.")
  for r in runs:
    if results[r.workdir].get("conflict"):
      log(f"  {r.workdir}: refused: {results[r.workdir]['error']}")
  environment = local_environment()
  execute = lambda r: execute_run(r, select, environment)
  for done, (r, result) in enumerate(run_local(todo, execute, parallel=parallel) if todo else (), start=1):
    runs_lib.write_result(r, result)
    results[r.workdir] = result
    status = "finished" if result["status"] == "finished" else f"FAILED: {result.get('error', '')}"
    log(f"[{done}/{len(todo)}] {r.workdir}: {status}")
  return results


def shell_command(run: Run) -> str:
  """One line for a batch system (a SLURM array task, a Kubernetes indexed job): train && eval."""
  return f"cd {shlex.quote(run.cwd)} && {shlex.join(run.train_command)} && {shlex.join(run.eval_command)}"


def local_environment() -> dict[str, str]:
  """The environment of a run's commands under the local launcher: this process's own."""
  return dict(os.environ)


def _tail(path: Path) -> str:
  try:
    with open(path, "rb") as f:
      f.seek(0, os.SEEK_END)
      f.seek(max(0, f.tell() - LOG_TAIL_CHARS))
      return f.read().decode(errors="replace")
  except OSError:
    return ""
