"""Scores a generator against a real split in a classifier's feature space.

`run(state, step)` draws `num_samples` images from the EMA (or raw)
generator, quantises them to uint8 levels as a saved image would be, and
reports FID, KID, precision/recall, the classifier score and, for
conditional generators, how often the classifier sees the intended class.
Every result carries its protocol: feature network hash, reference split,
sample counts and which weights. With a workdir it also writes a PNG grid of
samples from fixed noise, so grids from different steps compare directly.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gdjax import data, parallel, samples
from gdjax.evaluators import gan_metrics
from gdjax.evaluators.feature_network import ASSETS, FeatureNetwork

SAMPLES_DIR = "samples"


def quantize(images: jax.Array) -> jax.Array:
  """Rounds [-1, 1] images to the 256 levels a uint8 image can hold."""
  return jnp.round((jnp.clip(images, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


class GenerativeEvaluator:
  def __init__(self, task, builder, mesh, evaluation_config, *, seed: int = 0, workdir: str | Path | None = None):
    self.task, self.builder, self.config = task, builder, evaluation_config
    self.workdir = Path(workdir) if workdir else None
    self.replicated = parallel.replicated_sharding(mesh)
    self.batch_sharding = parallel.batch_sharding(mesh)
    self.feature_network = FeatureNetwork(
      evaluation_config.feature_network, evaluation_config.get("feature_network_dir") or ASSETS
    )
    self.batch_size = evaluation_config.batch_size
    self.eval_rng = jax.random.key(seed + 1_000_003)  # Apart from the training keys.
    grid_size = evaluation_config.grid_size
    grid_noise, _ = task.sample_noise(jax.random.key(seed + 7), grid_size)
    # Conditional grids show each class in turn, one column per class.
    self.grid_labels = jnp.arange(grid_size) % max(task.num_classes, 1)
    self.grid_noise = grid_noise
    self._sample = jax.jit(task.sample_step, static_argnames="use_ema", out_shardings=self.replicated)
    self._reference = None
    data.num_examples(builder, evaluation_config.reference_split)

  def _features(self, images):
    return self.feature_network.features_and_probabilities(quantize(samples.to_float(images)))

  def reference(self) -> dict:
    """Features of the whole real reference split (on every process: each scores all samples), computed once."""
    if self._reference is None:
      features, probabilities = [], []
      images = data.load_split(self.builder, self.config.reference_split, whole=True)["image"]
      for start in range(0, len(images), self.batch_size):
        chunk = images[start : start + self.batch_size]
        padded = data.pad_batch({"image": chunk}, self.batch_size)["image"]  # One shape, one compilation.
        f, p = jax.device_get(self._features(jnp.asarray(padded)))
        features.append(f[: len(chunk)])
        probabilities.append(p[: len(chunk)])
      features = np.concatenate(features)
      stats = gan_metrics.GaussianStats(features.shape[1])
      stats.update(features)
      self._reference = {"features": features, "stats": stats, "probabilities": np.concatenate(probabilities)}
    return self._reference

  def generated(self, state, num_samples: int, *, use_ema: bool):
    """Features, probabilities and intended labels of `num_samples` generated images."""
    features, probabilities, labels = [], [], []
    for index in range(-(-num_samples // self.batch_size)):
      noise, sample_labels = self.task.sample_noise(jax.random.fold_in(self.eval_rng, index), self.batch_size)
      if self.task.num_classes:
        sample_labels = (jnp.arange(self.batch_size) + index * self.batch_size) % self.task.num_classes
      images = self._sample(state, noise, sample_labels, use_ema=use_ema)
      f, p = jax.device_get(self._features(images))
      features.append(f)
      probabilities.append(p)
      labels.append(np.asarray(sample_labels))
    return (np.concatenate(x)[:num_samples] for x in (features, probabilities, labels))

  def score_images(self, images_uint8, labels=None) -> dict:
    """The same metrics for images made elsewhere (e.g. a PyTorch reference), uint8 `[N, h, w, c]`."""
    features, probabilities = [], []
    for start in range(0, len(images_uint8), self.batch_size):
      f, p = jax.device_get(self._features(jnp.asarray(images_uint8[start : start + self.batch_size])))
      features.append(f)
      probabilities.append(p)
    metrics = self.metrics(np.concatenate(features), np.concatenate(probabilities), labels)
    metrics["weights"] = "external"
    return metrics

  def run(self, state, step: int | None = None) -> dict:
    use_ema = self.config.use_ema
    features, probabilities, labels = self.generated(state, self.config.num_samples, use_ema=use_ema)
    metrics = self.metrics(features, probabilities, labels if self.task.num_classes else None)
    metrics["weights"] = "ema" if use_ema else "raw"
    if self.workdir is not None and step is not None and jax.process_index() == 0:
      grid = self._sample(state, self.grid_noise, self.grid_labels, use_ema=use_ema)
      columns = self.task.num_classes or None
      samples.save_image_grid(
        samples.to_uint8(grid), self.workdir / SAMPLES_DIR / f"step_{step:07d}.png", columns=columns
      )
    return metrics

  def metrics(self, features, probabilities, labels=None) -> dict:
    """FID, KID, precision/recall and classifier score of generated features against the reference."""
    reference = self.reference()
    stats = gan_metrics.GaussianStats(features.shape[1])
    stats.update(features)
    fid = gan_metrics.frechet_distance(*reference["stats"].mean_and_covariance(), *stats.mean_and_covariance())
    kid_mean, kid_std = gan_metrics.kernel_inception_distance(
      reference["features"], features, num_subsets=self.config.kid_subsets, subset_size=self.config.kid_subset_size
    )
    n_pr = min(self.config.precision_recall_samples, len(features), len(reference["features"]))
    precision, recall = gan_metrics.precision_recall(
      reference["features"][:n_pr], features[:n_pr], k=self.config.precision_recall_k
    )
    score_mean, score_std = gan_metrics.classifier_score(probabilities)
    metrics = {
      "fid": float(fid),
      "kid": float(kid_mean),
      "kid_std": float(kid_std),
      "precision": float(precision),
      "recall": float(recall),
      "classifier_score": float(score_mean),
      "classifier_score_std": float(score_std),
    }
    if labels is not None:
      metrics["intended_class_accuracy"] = float(np.mean(probabilities.argmax(-1) == labels))
    metrics.update(
      self.feature_network.protocol,
      reference_split=self.config.reference_split,
      num_real=len(reference["features"]),
      num_generated=len(features),
      precision_recall_samples=n_pr,
    )
    return metrics
