"""Runs as Ray tasks: on a local Ray instance kept on loopback, or on an existing cluster.

Each run is one `@ray.remote(num_cpus=1)` task that calls
`launchers.execute_run` on whichever node Ray picks and returns the result;
the driver writes the result files. On a cluster (`--ray_address`) every
node must see the sweep's --out directory at the same path (a shared
filesystem), since the workdirs and logs are written there.

A run's commands get the node's environment, except for the variables that
decide numerics, threads and network access (`FORWARDED_PREFIXES`,
`FORWARDED_NAMES`), which are the driver's, exactly: a variable the driver
lacks is removed. So a local Ray run computes what the local launcher
computes, bit for bit, though Ray sets e.g. OMP_NUM_THREADS=1 in its workers.

The local instance stays on 127.0.0.1. Ray 2.60 needs three things for that,
found by watching its sockets and connect() calls: `_node_ip_address=
"127.0.0.1"` alone is turned into the machine's address when the Ray cluster
mode is on (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` turns it off, despite its
name, on Linux too); the dashboard process's usage-stats module asks the
cloud metadata service (169.254.169.254, and DNS for metadata.google.internal)
even with usage stats disabled, so HTTP(S) from Ray's processes goes to a
closed loopback port (a proxy at 127.0.0.1:9, loopback itself exempt); and
usage stats are off (RAY_USAGE_STATS_ENABLED=0). These are set in
os.environ before Ray is imported and started, and restored afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence

from gdjax.errors import GdjaxError
from gdjax.sweep import launchers
from gdjax.sweep import runs as runs_lib
from gdjax.sweep.plan import Run

FORWARDED_PREFIXES = ("XLA_", "JAX_", "TF_", "GDJAX_", "OMP_", "MKL_", "OPENBLAS_", "TPU_")
FORWARDED_NAMES = frozenset(
  ("PYTHONHASHSEED", "PYTHONPATH", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
)
_CLOSED_PROXY = "http://127.0.0.1:9"
LOOPBACK_ENVIRONMENT = {
  "RAY_USAGE_STATS_ENABLED": "0",
  "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
  "http_proxy": _CLOSED_PROXY,
  "https_proxy": _CLOSED_PROXY,
  "HTTP_PROXY": _CLOSED_PROXY,
  "HTTPS_PROXY": _CLOSED_PROXY,
  "no_proxy": "127.0.0.1,localhost,::1",
  "NO_PROXY": "127.0.0.1,localhost,::1",
}
INSTALL_HINT = "pip install 'gdjax[ray]'"
CANCEL_WAIT_SECONDS = 20


class LauncherError(GdjaxError):
  """The Ray launcher cannot start: Ray is missing, or would not stay where it was asked to."""


def is_forwarded(name: str) -> bool:
  return name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES


def forwarded_environment(environment: Mapping[str, str]) -> dict[str, str]:
  """The driver's variables that a run's commands must see on every node."""
  return {k: v for k, v in environment.items() if is_forwarded(k)}


def task_environment(node_environment: Mapping[str, str], driver_variables: Mapping[str, str]) -> dict[str, str]:
  """The node's environment, less Ray's own variables, with the driver's forwarded variables exactly."""
  environment = {
    k: v for k, v in node_environment.items() if not is_forwarded(k) and not k.startswith(("RAY_", "__RAY"))
  }
  environment.update(driver_variables)
  return environment


def execute_on_node(run: Run, select: Mapping[str, str] | None, driver_variables: Mapping[str, str]) -> dict:
  """The Ray task: `execute_run` with the task environment above."""
  return launchers.execute_run(run, select, task_environment(os.environ, driver_variables))


def require_ray() -> None:
  """Raises LauncherError, saying how to install Ray, if it is missing; imports nothing."""
  if importlib.util.find_spec("ray") is None:
    raise LauncherError(
      f"--launcher ray needs Ray, which is not installed here. Install it with {INSTALL_HINT}, or use "
      "--launcher local (the default)."
    )


def import_ray():
  """Imports Ray, or says how to install it."""
  os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # Before the import: Ray reads it when it starts.
  try:
    import ray
  except ImportError:
    raise LauncherError(
      f"--launcher ray needs Ray, which is not installed here. Install it with {INSTALL_HINT}, or use "
      "--launcher local (the default)."
    ) from None
  return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int = 1) -> Iterator:
  """Ray, started on loopback with `num_cpus` CPUs (address None) or connected to `address`; shut down after.

  Yields the `ray` module.
  """
  saved = dict(os.environ)
  ray = restore_cluster_mode = None
  try:
    if address is None:
      os.environ.update(LOOPBACK_ENVIRONMENT)
    module = import_ray()
    if address is None:
      constants = sys.modules.get("ray._private.ray_constants")
      if constants is not None and constants.ENABLE_RAY_CLUSTER:
        # Ray was imported before the variable was set (it is read once, at import): do what it would have done.
        constants.ENABLE_RAY_CLUSTER = False
        restore_cluster_mode = constants
      context = module.init(
        num_cpus=num_cpus,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
      )
      ray = module
      node_ip = context.address_info.get("node_ip_address", "")
      if not is_loopback(node_ip):
        raise LauncherError(f"the local Ray instance took the address {node_ip}, not 127.0.0.1; it was shut down.")
    else:
      module.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
      ray = module
    yield ray
  finally:
    if ray is not None:
      ray.shutdown()
    os.environ.clear()
    os.environ.update(saved)
    if restore_cluster_mode is not None:
      restore_cluster_mode.ENABLE_RAY_CLUSTER = True


def run_on_ray(
  runs: Sequence[Run], select: Mapping[str, str] | None, *, address: str | None, num_cpus: int
) -> Iterator[tuple[Run, dict]]:
  """Runs every run as a Ray task, yielding (run, result) as each ends."""
  driver_variables = forwarded_environment(os.environ)  # Before ray_session adds its own.
  with ray_session(address, num_cpus=num_cpus) as ray:
    remote = ray.remote(num_cpus=1)(execute_on_node)
    pending = {remote.remote(run, select, driver_variables): run for run in runs}
    waiting = list(pending)
    try:
      while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        for ref in done:
          run = pending[ref]
          try:
            result = ray.get(ref)
          except Exception as e:  # The task itself died: a lost node, a worker killed for memory.
            result = {**runs_lib.describe(run), "status": "failed", "error": f"the Ray task failed: {e}"}
          yield run, result
    except BaseException:
      # Interrupted: cancel the tasks before Ray shuts down, so that each stops its own gdjax process
      # (subprocess.run kills its child when interrupted) rather than leaving it orphaned and training.
      for ref in waiting:
        ray.cancel(ref)
      ray.wait(waiting, num_returns=len(waiting), timeout=CANCEL_WAIT_SECONDS)
      raise


def is_loopback(address: str) -> bool:
  """127.0.0.0/8 or ::1, also written IPv4-mapped (::ffff:127.0.0.1), as sockets report it."""
  try:
    ip = ipaddress.ip_address(address.split("%")[0])
  except ValueError:
    return False
  if ip.version == 6 and ip.ipv4_mapped is not None:
    ip = ip.ipv4_mapped
  return ip.is_loopback
