"""Scores a generator against a real split in a classifier's feature space: FID, KID, precision/recall, classifier score.

`run(params)` draws `num_samples` images through the task's `sample`
function (ids 0..num_samples-1 under `sample_seed`: the images `gdjax sample
--seed` draws) and compares their features under the feature network with
those of the real `split`. Every result carries its protocol: the feature
network's hash, the reference split and the sample counts.
"""

from __future__ import annotations

import numpy as np

from gdjax import data
from gdjax.evaluators import feature_network as feature_networks
from gdjax.evaluators import gan_metrics
from gdjax.evaluators.base import EvalContext, SampleEvaluator


class Evaluator(SampleEvaluator):
  def __init__(
    self,
    inference,
    context: EvalContext,
    *,
    split: str,
    num_samples: int = 10_000,
    batch_size: int = 500,
    sample_seed: int = 0,
    feature_network: str = feature_networks.DEFAULT_NAME,
    feature_network_dir: str = "",
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    precision_recall_samples: int = 5000,
    precision_recall_k: int = 3,
  ):
    super().__init__(inference, context, num_samples=num_samples, sample_seed=sample_seed, batch_size=batch_size)
    self.split = split
    self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
    self.precision_recall_samples, self.precision_recall_k = precision_recall_samples, precision_recall_k
    self.feature_network = feature_networks.load(feature_network, feature_network_dir)
    self._reference = None
    data.num_examples(context.builder, split)  # A bad split fails now, not at the first eval.

  def features(self, images_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feature vectors and class probabilities of uint8 images `[N, h, w, c]`."""
    return self.feature_network.of_uint8_images(images_uint8, self.batch_size)

  def reference(self) -> dict:
    """Features of the whole real reference split (every process scores all samples), computed once."""
    if self._reference is None:
      images = data.load_split(self.context.builder, self.split, whole=True)["image"]
      features, _ = self.features(images)
      stats = gan_metrics.GaussianStats(features.shape[1])
      stats.update(features)
      self._reference = {"features": features, "stats": stats}
    return self._reference

  def run(self, params, step: int | None = None) -> dict:
    del step
    images, _ = self.draw(params)
    return self.score_images(images)

  def score_images(self, images_uint8: np.ndarray) -> dict:
    """The metrics of any uint8 images `[N, h, w, c]` against the reference (a PyTorch model's samples, real data)."""
    features, probabilities = self.features(np.asarray(images_uint8))
    reference = self.reference()
    stats = gan_metrics.GaussianStats(features.shape[1])
    stats.update(features)
    fid = gan_metrics.frechet_distance(*reference["stats"].mean_and_covariance(), *stats.mean_and_covariance())
    kid_mean, kid_std = gan_metrics.kernel_inception_distance(
      reference["features"], features, num_subsets=self.kid_subsets, subset_size=self.kid_subset_size
    )
    n_pr = min(self.precision_recall_samples, len(features), len(reference["features"]))
    precision, recall = gan_metrics.precision_recall(
      reference["features"][:n_pr], features[:n_pr], k=self.precision_recall_k
    )
    score_mean, score_std = gan_metrics.classifier_score(probabilities)
    return {
      "fid": float(fid),
      "kid": float(kid_mean),
      "kid_std": float(kid_std),
      "precision": float(precision),
      "recall": float(recall),
      "classifier_score": float(score_mean),
      "classifier_score_std": float(score_std),
      **self.feature_network.protocol,
      "reference_split": self.split,
      "num_real": len(reference["features"]),
      "num_generated": len(features),
      "precision_recall_samples": n_pr,
    }
