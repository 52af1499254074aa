"""Accuracy and mean loss of a classifier over one split, streamed in padded batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gdjax import data, parallel


class ClassificationEvaluator:
  """`run(state)` -> `{"accuracy", "loss", "num_examples"}` on `split`."""

  def __init__(self, task, builder, mesh, *, split: str, batch_size: int):
    self.task, self.builder, self.split, self.batch_size = task, builder, split, batch_size
    self.batch_sharding = parallel.batch_sharding(mesh)
    self.eval_step = jax.jit(task.eval_step, out_shardings=parallel.replicated_sharding(mesh))
    data.num_examples(builder, split)  # A bad split fails now, not at the first eval.

  def run(self, state, step: int | None = None) -> dict:
    del step
    totals = None
    batches = data.eval_batches(self.builder, self.split, global_batch_size=self.batch_size)
    for batch in parallel.prefetch_to_mesh(batches, self.batch_sharding):
      sums = self.eval_step(state, batch)
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    return self.task.finalize_eval(jax.device_get(totals))
