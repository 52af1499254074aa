"""Evaluators run on a schedule during training and by `gdjax eval`.

Each has `run(state, step) -> dict of metrics`. `build_evaluator` picks the
one a task needs: accuracy for classifiers, FID/KID/precision-recall for
generators. A new evaluator is one module here plus a branch below.
"""

from __future__ import annotations

from gdjax.evaluators.classification import ClassificationEvaluator


def build_evaluator(task, config, builder, mesh, *, split: str | None = None, workdir=None):
  """The evaluator for `task`; `split` overrides the config's evaluation split."""
  from gdjax.tasks.gan import GANTask

  if isinstance(task, GANTask):
    from gdjax.evaluators.generative import GenerativeEvaluator

    evaluation = config.evaluation
    if split:
      evaluation = evaluation.copy_and_resolve_references()
      evaluation.reference_split = split
    return GenerativeEvaluator(task, builder, mesh, evaluation, seed=config.seed, workdir=workdir)
  return ClassificationEvaluator(
    task, builder, mesh, split=split or config.dataset.eval_split, batch_size=config.eval_batch_size
  )


__all__ = ["ClassificationEvaluator", "build_evaluator"]
