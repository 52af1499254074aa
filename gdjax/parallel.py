"""Processes, device mesh, shardings, placement of host batches, and the compiled train step.

gdjax trains data-parallel: a one-dimensional mesh whose `data` axis spans
every device of every process. Batches are split over that axis, parameters
and optimizer state are replicated. The same code runs on one CPU, on fake
CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8`), on
several processes joined by JAX's distributed runtime, and on a TPU slice;
only `jax.devices()` changes.

The train step is compiled one of two ways (`config.parallelism`): `jit` over
the mesh, where XLA inserts the gradient all-reduce itself, or `pmap`, where
the same task step runs per device and gradients, batch statistics and
metrics are averaged with `lax.pmean` over the `batch` axis. Either way the
step can be guarded against NaN and Inf (`guard_nonfinite`).
"""

from __future__ import annotations

import collections
import itertools
import os
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gdjax.errors import ConfigError, GdjaxError

DATA_AXIS = "data"
PMAP_AXIS = "batch"  # The axis name the pmap path reduces over.
PARALLELISMS = ("jit", "pmap")
FINITE_METRIC = "finite"  # Added by `guard_nonfinite`: whether the step's metrics and new state are finite.
ENV_COORDINATOR_ADDRESS = "GDJAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "GDJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "GDJAX_PROCESS_ID"


class DistributedError(GdjaxError):
  """This process could not join the multi-process run it was told to join."""


# --- Processes.


def initialize_distributed(
  coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
  """Joins JAX's distributed runtime when this is one of several processes; returns whether it did.

  Must run before anything touches a JAX device. The topology comes from the
  arguments, else from $GDJAX_COORDINATOR_ADDRESS, $GDJAX_NUM_PROCESSES and
  $GDJAX_PROCESS_ID (all three, on every process). With none of them, on a
  Cloud TPU VM `jax.distributed.initialize()` reads the topology by itself;
  anywhere else the run is a single process. `num_processes=1` alone means
  single-process, also on a TPU VM.
  """
  coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR_ADDRESS) or None
  num_processes = _int_or_env(num_processes, ENV_NUM_PROCESSES)
  process_id = _int_or_env(process_id, ENV_PROCESS_ID)
  if num_processes == 1:
    return False
  given = {
    "--coordinator_address": coordinator_address,
    "--num_processes": num_processes,
    "--process_id": process_id,
  }
  missing = [name for name, value in given.items() if value is None]
  if len(missing) == len(given):
    if not _on_cloud_tpu_vm():
      return False
    # Cloud TPU: JAX finds the workers, this worker's id and the coordinator.
    _start_distributed(dict(), "the Cloud TPU VM's workers")
    return True
  if missing:
    raise ConfigError(
      f"A multi-process run needs all of --coordinator_address, --num_processes and --process_id "
      f"(or ${ENV_COORDINATOR_ADDRESS}, ${ENV_NUM_PROCESSES}, ${ENV_PROCESS_ID}); missing: {', '.join(missing)}. "
      "Give every process the same address and count, and its own id from 0."
    )
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ConfigError(
      f"--process_id must lie in [0, --num_processes); got process_id={process_id}, num_processes={num_processes}."
    )
  _start_distributed(
    dict(coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id),
    f"{coordinator_address} as process {process_id} of {num_processes}",
  )
  return True


def _start_distributed(kwargs: dict, description: str) -> None:
  # Cross-process collectives on CPU go through Gloo over TCP (JAX's default,
  # set explicitly so a changed default cannot turn them off); TPU and GPU
  # backends ignore it.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # Connection refused, timeouts, a second initialize: all end the same way.
    raise DistributedError(
      f"Could not join the distributed run at {description} ({type(e).__name__}: {' '.join(str(e).split())[:300]}). "
      "Check that every process got the same --coordinator_address and --num_processes, that process 0 "
      "is running, and that the address is reachable from this host."
    ) from e


def _int_or_env(value: int | None, env_var: str) -> int | None:
  if value is not None:
    return int(value)
  text = os.environ.get(env_var, "").strip()
  if not text:
    return None
  try:
    return int(text)
  except ValueError:
    raise ConfigError(f"${env_var} must be an integer; got {text!r}.") from None


def _on_cloud_tpu_vm() -> bool:
  """Whether JAX found TPU chips and libtpu at import (it then sets this flag)."""
  try:
    from jax._src import cloud_tpu_init
  except ImportError:  # A future JAX may move it; then only explicit flags start a multi-process run.
    return False
  return bool(getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False))


# --- Mesh and shardings.


def make_data_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all devices of all processes, named `data`.

  The axis is `Auto`: jit's partitioner propagates the batch sharding through
  the step, so model code never mentions shardings.
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the `data` axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def check_global_batch_size(global_batch_size: int) -> int:
  """Returns the per-process batch size, or explains why it cannot be split."""
  devices = jax.device_count()
  if global_batch_size % devices:
    raise ConfigError(
      f"batch_size={global_batch_size} cannot be split evenly over "
      f"{devices} devices. Set --config.batch_size to a multiple of "
      f"{devices}."
    )
  return global_batch_size // jax.process_count()


def to_global_batch(local_batch: dict, sharding: NamedSharding, *, device_axis: bool = False) -> dict:
  """Turns this process's NumPy batch into global arrays on the mesh.

  With `device_axis` (the pmap layout), each array gets a leading axis of
  one entry per device, `[devices, per-device batch, ...]`, split over the
  mesh; every device gets the same rows as in the plain layout.
  """
  local_devices = len(sharding.addressable_devices)

  def place(x):
    x = np.asarray(x)
    if device_axis:
      x = x.reshape(local_devices, -1, *x.shape[1:])
    return jax.make_array_from_process_local_data(sharding, x)

  return jax.tree.map(place, local_batch)


def prefetch_to_mesh(
  local_batches: Iterable[dict], sharding: NamedSharding, size: int = 2, *, device_axis: bool = False
) -> Iterator[dict]:
  """Places batches on the mesh `size` steps ahead of the consumer.

  Transfers are asynchronous in JAX, so keeping a couple of batches in flight
  overlaps host-to-device copies with the running train step.
  """
  queue = collections.deque()
  iterator = iter(local_batches)

  def enqueue(n):
    for batch in itertools.islice(iterator, n):
      queue.append(to_global_batch(batch, sharding, device_axis=device_axis))

  enqueue(size)
  while queue:
    yield queue.popleft()
    enqueue(1)


def state_shardings(state_shapes, mesh: Mesh):
  """Shardings of the state pytree: replicated (pure data parallelism)."""
  return jax.tree.map(lambda _: replicated_sharding(mesh), state_shapes)


def jit_train_step(train_step, state_shapes, mesh: Mesh):
  """Compiles `(state, batch, rng) -> (state, metrics)` data-parallel over `mesh`.

  The batch is split over the `data` axis, the state is replicated, and the
  input state's buffers are donated so that the update happens in place.
  """
  replicated = replicated_sharding(mesh)
  shardings = state_shardings(state_shapes, mesh)
  return jax.jit(
    train_step,
    in_shardings=(shardings, batch_sharding(mesh), replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=0,
  )


# --- NaN and Inf.


def all_finite(tree) -> jax.Array:
  """A boolean scalar: every floating-point leaf of `tree` is free of NaN and Inf."""
  checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def guard_nonfinite(train_step, *, skip: bool):
  """Wraps `(state, batch, rng) -> (state, metrics)` with a check for NaN and Inf.

  The step's metrics (loss and gradient norms among them) and its new state
  are checked on the device, and `metrics["finite"]` says whether all were
  finite, so the host can name the first bad step without a sync per step.
  With `skip`, a non-finite update is discarded on the device: the state
  stays as it was, except that its `step` advances, so the data position and
  the step's random key move on as usual.
  """

  def guarded(state, batch, rng):
    new_state, metrics = train_step(state, batch, rng)
    finite = jnp.logical_and(all_finite(metrics), all_finite(new_state))
    if skip:
      kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
      new_state = kept.replace(step=new_state.step)
    return new_state, {**metrics, FINITE_METRIC: finite}

  return guarded


# --- The compiled train step.


def compile_train_step(task, state_shapes, mesh: Mesh, *, parallelism: str = "jit", skip_nonfinite: bool = False):
  """The task's train step, guarded against NaN/Inf and compiled data-parallel over `mesh`.

  Returns `(state, batch, rng) -> (state, metrics)`. Under `jit` the batch is
  `[global batch, ...]` split over the mesh; under `pmap` it has a leading
  device axis (`to_global_batch(..., device_axis=True)`). The state and the
  metrics are replicated in both, so checkpoints and evaluators do not care
  which one ran.
  """
  if parallelism == "jit":
    return jit_train_step(guard_nonfinite(task.train_step, skip=skip_nonfinite), state_shapes, mesh)
  if parallelism == "pmap":
    return pmap_train_step(task, mesh, skip_nonfinite=skip_nonfinite)
  raise ConfigError(f"Unknown parallelism {parallelism!r}. Set --config.parallelism to one of {PARALLELISMS}.")


def pmap_train_step(task, mesh: Mesh, *, skip_nonfinite: bool = False):
  """The task's step under `jax.pmap` over the mesh's devices, averaged over the `batch` axis.

  Each device runs the `train_step` of `task.for_pmap(...)` on its part of
  the batch: that copy averages its gradients over the axis before its
  optimizer sees them, so every device applies the same update (the mean
  over the global batch, as under jit). Batch statistics and metrics are
  `pmean`ed after the step. Each device draws its own random numbers (the
  key is folded with the device index).
  """
  replica = task.for_pmap(PMAP_AXIS, mesh.devices.size)

  def step(state, batch, rng):
    rng = jax.random.fold_in(rng, jax.lax.axis_index(PMAP_AXIS))
    new_state, metrics = replica.train_step(state, batch, rng)
    return _pmean_batch_stats(new_state, PMAP_AXIS), _pmean_inexact(metrics, PMAP_AXIS)

  pmapped = jax.pmap(
    guard_nonfinite(step, skip=skip_nonfinite),
    axis_name=PMAP_AXIS,
    in_axes=(None, 0, None),  # State and key are the same on every device; the batch is split.
    out_axes=(None, None),
    devices=list(mesh.devices.flat),
    donate_argnums=0,
  )
  if jax.process_count() == 1:
    return pmapped
  replicated = replicated_sharding(mesh)

  def global_state(state):
    # With several processes pmap returns each process's own copy of the
    # replicated state; joined into one global array (no copies, no
    # communication), it is what evaluators and Orbax expect.
    return jax.tree.map(
      lambda x: jax.make_array_from_single_device_arrays(
        x.shape, replicated, [shard.data for shard in x.addressable_shards]
      ),
      state,
    )

  def multi_process_step(state, batch, rng):
    state, metrics = pmapped(state, batch, rng)
    return global_state(state), metrics

  return multi_process_step


def _pmean_inexact(tree, axis_name: str):
  return jax.tree.map(
    lambda x: jax.lax.pmean(x, axis_name) if jnp.issubdtype(jnp.result_type(x), jnp.inexact) else x, tree
  )


def _pmean_batch_stats(state, axis_name: str):
  """Averages every leaf under a `batch_stats` key: each device computed them from its own examples."""

  def sync(path, x):
    names = {getattr(entry, "key", getattr(entry, "name", None)) for entry in path}
    if "batch_stats" in names and jnp.issubdtype(jnp.result_type(x), jnp.inexact):
      return jax.lax.pmean(x, axis_name)
    return x

  return jax.tree_util.tree_map_with_path(sync, state)
