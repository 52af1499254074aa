"""How a generator's samples spread over the classes, as the shipped classifier sees them.

Each of `num_samples` samples (ids 0..num_samples-1 under `sample_seed`, the
same images the other sample evaluators score) is given the class the feature
network finds most probable. Reported:
- `class_share_<k>`: the share of the samples in class k (names in the
  dataset's class list, e.g. k=7 is "Sneaker" in Fashion-MNIST);
- `min_class_share`: the smallest of those, 1/K when every class is equally
  represented and 0 when one is missing;
- `class_entropy`: the entropy of the shares in nats, log K at best, and
  `normalized_class_entropy`: that divided by log K, in [0, 1];
- for a conditional generator, `intended_class_accuracy`: how often the
  classifier finds the class each sample was generated for.
A mode-collapsed generator can score a fair FID on a few classes; these
numbers show which classes it dropped.
"""

from __future__ import annotations

import math

import numpy as np

from gdjax.evaluators import feature_network as feature_networks
from gdjax.evaluators.base import EvalContext, SampleEvaluator


class Evaluator(SampleEvaluator):
  def __init__(
    self,
    inference,
    context: EvalContext,
    *,
    num_samples: int = 10_000,
    batch_size: int = 500,
    sample_seed: int = 0,
    feature_network: str = feature_networks.DEFAULT_NAME,
    feature_network_dir: str = "",
  ):
    super().__init__(inference, context, num_samples=num_samples, sample_seed=sample_seed, batch_size=batch_size)
    self.feature_network = feature_networks.load(feature_network, feature_network_dir)

  def run(self, params, step: int | None = None) -> dict:
    del step
    images, labels = self.draw(params)
    return self.coverage(images, labels)

  def coverage(self, images_uint8: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """The metrics for any uint8 images `[N, h, w, c]` (and the classes they were generated for)."""
    _, probabilities = self.feature_network.of_uint8_images(images_uint8, self.batch_size)
    predicted = probabilities.argmax(-1)
    num_classes = int(probabilities.shape[-1])
    return {**class_coverage(predicted, num_classes, labels), **self.feature_network.protocol}


def class_coverage(predicted: np.ndarray, num_classes: int, intended: np.ndarray | None = None) -> dict:
  """Class shares, smallest share and entropy of predicted classes; intended-class accuracy if given."""
  shares = np.bincount(predicted, minlength=num_classes) / len(predicted)
  nonzero = shares[shares > 0]
  entropy = float(-np.sum(nonzero * np.log(nonzero)))
  metrics = {f"class_share_{k}": float(share) for k, share in enumerate(shares)}
  metrics.update(
    min_class_share=float(shares.min()),
    class_entropy=entropy,
    normalized_class_entropy=entropy / math.log(num_classes),
    num_generated=len(predicted),
  )
  if intended is not None:
    metrics["intended_class_accuracy"] = float(np.mean(predicted == intended))
  return metrics
