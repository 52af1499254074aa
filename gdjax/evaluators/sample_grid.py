"""A PNG grid of samples drawn from fixed sample ids at each evaluation, so grids from different steps compare directly.

Written to `<workdir>/samples/step_<step>.png` during training (process 0
only); `gdjax eval --pictures` writes `step_<step>_<split>.png`. A
conditional generator's grid has one row per class, in class order, with
the samples of that class along it.
"""

from __future__ import annotations

import jax
import numpy as np

from gdjax import samples
from gdjax.evaluators.base import EvalContext, SampleEvaluator

SAMPLES_DIR = "samples"


class Evaluator(SampleEvaluator):
  def __init__(
    self, inference, context: EvalContext, *, num_samples: int = 100, sample_seed: int = 7, batch_size: int = 100
  ):
    super().__init__(inference, context, num_samples=num_samples, sample_seed=sample_seed, batch_size=batch_size)

  def run(self, params, step: int | None = None) -> dict:
    if self.context.workdir is None or step is None:
      return {}
    images, labels = self.draw(params)
    if jax.process_index() == 0:
      columns = None
      if labels is not None:
        order = np.argsort(labels, kind="stable")  # Class 0's samples first, then class 1's, ...
        images, columns = images[order], -(-len(labels) // len(self.context.class_names))
      samples.save_image_grid(
        images,
        self.context.workdir / SAMPLES_DIR / f"step_{step:07d}{self.context.picture_suffix}.png",
        columns=columns,
      )
    return {}
