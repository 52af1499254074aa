"""Accuracy and cross-entropy of a classifier's `predict` over one split, streamed in padded batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gdjax import data, parallel
from gdjax.evaluators.base import EvalContext
from gdjax.evaluators.base import Evaluator as BaseEvaluator


class Evaluator(BaseEvaluator):
  """`run(params)` -> `{"accuracy", "cross_entropy", "num_examples"}` on `split`.

  The cross-entropy is that of `predict`'s probabilities (the softmax of the
  class scores, also for hinge-trained models), so it compares across losses.
  """

  requires = ("predict",)

  def __init__(self, inference, context: EvalContext, *, split: str, batch_size: int = 1000):
    super().__init__(inference, context)
    self.split, self.batch_size = split, batch_size
    self.batch_sharding = parallel.batch_sharding(context.mesh)
    predict = inference["predict"].fn

    def masked_sums(params, batch):
      outputs = predict(params, {"images": batch["image"]})
      true_class_probability = jnp.take_along_axis(outputs["probabilities"], batch["label"][:, None], axis=-1)[:, 0]
      mask = batch["mask"]
      return {
        "correct": jnp.sum((outputs["labels"] == batch["label"]) * mask),
        "cross_entropy_sum": jnp.sum(-jnp.log(jnp.maximum(true_class_probability, 1e-30)) * mask),
        "count": jnp.sum(mask),
      }

    self.masked_sums = jax.jit(masked_sums, out_shardings=parallel.replicated_sharding(context.mesh))
    parallel.check_global_batch_size(batch_size)
    data.num_examples(context.builder, split)  # A bad split fails now, not at the first eval.

  def run(self, params, step: int | None = None) -> dict:
    del step
    totals = None
    batches = data.eval_batches(self.context.builder, self.split, global_batch_size=self.batch_size)
    for batch in parallel.prefetch_to_mesh(batches, self.batch_sharding):
      sums = self.masked_sums(params, batch)
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = max(float(totals["count"]), 1.0)
    return {
      "accuracy": float(totals["correct"]) / count,
      "cross_entropy": float(totals["cross_entropy_sum"]) / count,
      "num_examples": int(totals["count"]),
    }
