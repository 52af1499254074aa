"""Device mesh, shardings and placement of host batches on the mesh.

gdjax trains data-parallel: a one-dimensional mesh whose `data` axis spans
every device of every process. Batches are split over that axis, parameters
and optimizer state are replicated. The same code runs on one CPU, on fake
CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8`) and on a
TPU slice; only `jax.devices()` changes.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


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
  from gdjax.errors import ConfigError

  devices = jax.device_count()
  if global_batch_size % devices:
    raise ConfigError(
      f"batch_size={global_batch_size} cannot be split evenly over "
      f"{devices} devices. Set --config.batch_size to a multiple of "
      f"{devices}."
    )
  return global_batch_size // jax.process_count()


def to_global_batch(local_batch: dict, sharding: NamedSharding) -> dict:
  """Turns this process's NumPy batch into global arrays on the mesh."""
  return jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
    local_batch,
  )


def prefetch_to_mesh(local_batches: Iterable[dict], sharding: NamedSharding, size: int = 2) -> Iterator[dict]:
  """Places batches on the mesh `size` steps ahead of the consumer.

  Transfers are asynchronous in JAX, so keeping a couple of batches in flight
  overlaps host-to-device copies with the running train step.
  """
  queue = collections.deque()
  iterator = iter(local_batches)

  def enqueue(n):
    for batch in itertools.islice(iterator, n):
      queue.append(to_global_batch(batch, sharding))

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
