"""Naive Bayes, the generative classifier: a closed-form fit by streaming sufficient statistics.

Naive Bayes models p(x | y) as a product over features and classifies by
Bayes' rule. Its maximum-likelihood (or Laplace-smoothed) parameters are
functions of a few sums over the training set, so "training" is one pass that
adds each batch's sums to the state: a `train_step` with no optimizer and no
gradient. The pass goes through the same pipeline, devices, checkpoints and
evaluators as every other task. Under `jit` the batch is split over the mesh
and its sums are global by themselves; the pmap copy (`for_pmap`) adds them
up over the axis with `lax.psum`. Every training example must be counted
exactly once, so the task refuses a config without
`config.dataset.single_pass` (one padded pass with a mask; the data pipeline
checks that `total_steps` covers it).

Three kinds (`config.naive_bayes.kind`), on the features of `gdjax.features`:
- "bernoulli" (binarized pixels): per class, how many examples have each feature on;
- "gaussian" (intensities): per class and feature, the mean and the sum of
  squared deviations M2, merged batch by batch with Chan et al.'s update
  (a float32 sum of squares would cancel catastrophically);
- "multinomial" (counts, e.g. bag-of-words): per class, the total count of each feature.
`inference_params` turns them into the log-probability tables `predict` uses,
with scikit-learn's definitions of the Laplace smoothing `alpha` and the
variance floor `var_smoothing`.
"""

from __future__ import annotations

import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gdjax import config_defaults, features
from gdjax.errors import ConfigError
from gdjax.tasks.base import InferenceFunction, TensorSpec

KINDS = ("bernoulli", "gaussian", "multinomial")
_HIGHEST = jax.lax.Precision.HIGHEST  # Exact float32 sums of 0/1 products on TPUs too.


def default_config() -> ml_collections.ConfigDict:
  """Bernoulli naive Bayes on binarized Fashion-MNIST: one pass over the first 54,000 training images."""
  config = ml_collections.ConfigDict()
  config.task = "naive_bayes"
  config.dataset = config_defaults.fashion_mnist_dataset()
  # The examples counted: all of train[:54000]. A smaller size trains on a class-balanced
  # subset (gdjax.data.class_balanced_subset) drawn under subset_seed, the run's seed by default.
  config.dataset.subset_size = 54_000
  config.dataset.single_pass = True  # Every example exactly once; see gdjax/data/pipeline.py.
  config.naive_bayes = ml_collections.ConfigDict(
    dict(
      kind="bernoulli",
      alpha=1.0,  # Laplace smoothing of the Bernoulli and multinomial counts (scikit-learn's alpha).
      var_smoothing=1e-9,  # Gaussian: this times the largest feature variance is added to every variance.
    )
  )
  config.features = "binarized"
  config.num_classes = 10  # Written by the loop from the dataset's labels.
  config.batch_size = 1000
  config_defaults.add_training_options(config)
  config.dataset.subset_seed = config.get_ref("seed")
  # One pass: ceil(N / batch_size) steps, following subset_size and batch_size.
  config.total_steps = (config.dataset.get_ref("subset_size") + config.get_ref("batch_size") - 1) // config.get_ref(
    "batch_size"
  )
  config.log_every_steps = 10
  config.eval_every_steps = 0  # Evaluated once, after the pass (partial sums make a worse model, not a useful curve).
  config.eval_batch_size = 1000
  config.evals = ml_collections.ConfigDict()
  config.evals.classification = config_defaults.evaluation(
    config,
    "classification",
    split=config.dataset.get_ref("eval_split").identity(),
    batch_size=config.get_ref("eval_batch_size").identity(),
  )
  config.checkpoint = config_defaults.checkpoint_options(
    every_steps=25, best_metric="classification/accuracy", best_mode="max"
  )
  return config


@flax.struct.dataclass
class NaiveBayesState:
  """The sufficient statistics seen so far, as one pytree of arrays.

  `class_count[c]` is how many training examples of class c were counted;
  `statistics` holds `feature_sum` ([classes, features]: the sum of each
  feature over a class's examples) for the Bernoulli and multinomial kinds,
  and `mean` and `m2` (per class and feature: the mean, and the sum of
  squared deviations from it) for the Gaussian kind. Counts are float32, so
  they are exact up to 2**24 (16.7M) per class and feature.
  """

  step: jax.Array
  class_count: jax.Array
  statistics: Any


class NaiveBayesTask:
  """Binds the naive Bayes kind, its smoothing and its features from the config to pure functions."""

  progress_metrics = ("examples",)

  def __init__(self, config: ml_collections.ConfigDict, *, sum_axis: str | None = None):
    self.config = config
    options = config.naive_bayes
    self.kind = options.kind
    if self.kind not in KINDS:
      raise ConfigError(f"Unknown naive Bayes kind {self.kind!r}. Set --config.naive_bayes.kind to one of {KINDS}.")
    self.alpha = float(options.get("alpha", 1.0))
    self.var_smoothing = float(options.get("var_smoothing", 1e-9))
    if self.kind != "gaussian" and not self.alpha > 0:
      raise ConfigError(
        f"config.naive_bayes.alpha={self.alpha}: Laplace smoothing must be > 0, or a feature never seen in a class "
        "gets log-probability -inf. scikit-learn's default is 1.0."
      )
    if self.kind == "gaussian" and not self.var_smoothing > 0:
      raise ConfigError(
        f"config.naive_bayes.var_smoothing={self.var_smoothing}: it must be > 0, or a feature constant within a class "
        "gets variance 0. scikit-learn's default is 1e-9."
      )
    try:
      self.features = features.check_name(config.get("features", "binarized"))
    except ValueError as e:
      raise ConfigError(str(e)) from None
    if not config.dataset.get("single_pass", False):
      raise ConfigError(
        "Naive Bayes adds up sufficient statistics, so it must see every training example exactly once; set "
        "--config.dataset.single_pass=True (one pass, ceil(N / batch_size) steps)."
      )
    self.sum_axis = sum_axis
    self.num_classes = int(config.get("num_classes", 10))
    self.best_metric = config.checkpoint.best_metric
    self.best_mode = config.checkpoint.best_mode
    input_shape = tuple(config.get("input_shape") or (28, 28, 1))
    input_dtype = "float32" if config.dataset.get("text_feature") else "uint8"
    self.inference_functions = {
      "predict": InferenceFunction(
        fn=self.predict,
        inputs={"images": TensorSpec(input_dtype, (-1, *input_shape), "pixels in [0, 255], or word counts")},
        outputs={
          "probabilities": TensorSpec("float32", (-1, self.num_classes), "p(y | x) by Bayes' rule"),
          "labels": TensorSpec("int32", (-1,), "the most probable class"),
        },
      )
    }

  @property
  def examples_per_step(self) -> int:
    return self.config.batch_size

  def for_pmap(self, axis_name: str, num_devices: int) -> NaiveBayesTask:
    del num_devices  # Sums do not care how many devices hold parts of them.
    return NaiveBayesTask(self.config, sum_axis=axis_name)

  def init_state(self, rng: jax.Array, image_shape: tuple[int, ...]) -> NaiveBayesState:
    del rng  # Nothing random: the fit is a sum.
    shape = (self.num_classes, math.prod(image_shape))
    if self.kind == "gaussian":
      statistics = {"mean": jnp.zeros(shape, jnp.float32), "m2": jnp.zeros(shape, jnp.float32)}
    else:
      statistics = {"feature_sum": jnp.zeros(shape, jnp.float32)}
    return NaiveBayesState(
      step=jnp.zeros((), jnp.int32), class_count=jnp.zeros((self.num_classes,), jnp.float32), statistics=statistics
    )

  def _sum(self, x: jax.Array) -> jax.Array:
    """A sum over the examples of this call, made global: a psum over the pmap axis (jit's batch is global already)."""
    return x if self.sum_axis is None else jax.lax.psum(x, self.sum_axis)

  def train_step(self, state: NaiveBayesState, batch: dict, rng: jax.Array):
    """Adds the batch's sufficient statistics (masked: padding counts for nothing) to the state."""
    del rng
    x = self._flat_features(batch["image"])
    weights = jax.nn.one_hot(batch["label"], self.num_classes, dtype=jnp.float32) * batch["mask"][:, None]
    batch_count = self._sum(jnp.sum(weights, axis=0))
    if self.kind == "gaussian":
      statistics = self._merge_moments(state, x, batch["label"], weights, batch_count)
    else:
      feature_sum = self._sum(jnp.matmul(weights.T, x, precision=_HIGHEST))
      statistics = {"feature_sum": state.statistics["feature_sum"] + feature_sum}
    class_count = state.class_count + batch_count
    # Per step: the loop logs the mean over its logging interval, so a running total would read low.
    metrics = {"examples": jnp.sum(batch_count)}
    return state.replace(step=state.step + 1, class_count=class_count, statistics=statistics), metrics

  def _merge_moments(self, state, x, labels, weights, batch_count) -> dict:
    """Per class, the batch's mean and M2 (two passes over the batch), merged into the running ones.

    Chan, Golub & LeVeque's pairwise update: with counts n_a, n_b, means
    m_a, m_b and d = m_b - m_a, the merged mean is m_a + d n_b / n and the
    merged M2 is M2_a + M2_b + d^2 n_a n_b / n.

    References:
      Chan, Golub & LeVeque, "Updating Formulae and a Pairwise Algorithm for
      Computing Sample Variances", Stanford CS report STAN-CS-79-773, 1979.
    """
    n_b = batch_count[:, None]
    mean_b = self._sum(jnp.matmul(weights.T, x, precision=_HIGHEST)) / jnp.maximum(n_b, 1.0)
    deviation = x - mean_b[labels]  # Each example from its own class's batch mean.
    m2_b = self._sum(jnp.matmul(weights.T, jnp.square(deviation), precision=_HIGHEST))
    n_a = state.class_count[:, None]
    n = n_a + n_b
    delta = mean_b - state.statistics["mean"]
    mean = state.statistics["mean"] + delta * (n_b / jnp.maximum(n, 1.0))
    m2 = state.statistics["m2"] + m2_b + jnp.square(delta) * (n_a * n_b / jnp.maximum(n, 1.0))
    return {"mean": mean, "m2": m2}

  def inference_params(self, state: NaiveBayesState, *, use_ema: bool = True) -> dict:
    """The log-probability tables of the fitted model (see `naive_bayes_parameters`)."""
    del use_ema  # No EMA: the statistics are the model.
    return naive_bayes_parameters(
      self.kind, state.class_count, state.statistics, alpha=self.alpha, var_smoothing=self.var_smoothing
    )

  def predict(self, params: dict, inputs: dict) -> dict:
    """Class probabilities and labels by Bayes' rule."""
    scores = joint_log_likelihood(self.kind, params, self._flat_features(inputs["images"]))
    return {"probabilities": jax.nn.softmax(scores, -1), "labels": jnp.argmax(scores, -1).astype(jnp.int32)}

  def _flat_features(self, inputs: jax.Array) -> jax.Array:
    x = features.transform(self.features, inputs)
    return jnp.reshape(x, (x.shape[0], -1))


def naive_bayes_parameters(
  kind: str, class_count: jax.Array, statistics: dict, *, alpha: float, var_smoothing: float
) -> dict:
  """The parameters scikit-learn's BernoulliNB, GaussianNB or MultinomialNB would fit from the same sums.

  With N_c examples of class c and S_cj the sum of feature j over them:
  - class log-prior: log(N_c / N);
  - Bernoulli: p_cj = (S_cj + alpha) / (N_c + 2 alpha), folded into a linear
    score x . log(p / (1 - p)) + sum_j log(1 - p_cj) + log-prior;
  - multinomial: log p_cj = log(S_cj + alpha) - log(sum_j S_cj + alpha D);
  - Gaussian: the class means, and the class variances M2_cj / N_c plus
    var_smoothing times the largest variance of a feature over the whole
    training set (by the law of total variance, from the class moments).

  References:
    McCallum & Nigam, "A Comparison of Event Models for Naive Bayes Text
    Classification", AAAI-98 workshop (Bernoulli and multinomial models).
    scikit-learn's `sklearn.naive_bayes` (the same smoothing and variance floor).

  Returns:
    For Bernoulli and multinomial: `{"weights": [D, C], "bias": [C]}`; for
    Gaussian: `{"mean": [C, D], "variance": [C, D], "log_prior": [C]}`.
  """
  total = jnp.sum(class_count)
  log_prior = jnp.log(class_count) - jnp.log(jnp.maximum(total, 1.0))
  counts = class_count[:, None]
  if kind == "bernoulli":
    on = statistics["feature_sum"]
    log_on = jnp.log(on + alpha) - jnp.log(counts + 2 * alpha)
    log_off = jnp.log(counts - on + alpha) - jnp.log(counts + 2 * alpha)
    return {"weights": (log_on - log_off).T, "bias": jnp.sum(log_off, axis=1) + log_prior}
  if kind == "multinomial":
    feature_sum = statistics["feature_sum"]
    smoothed = feature_sum + alpha
    log_p = jnp.log(smoothed) - jnp.log(jnp.sum(smoothed, axis=1, keepdims=True))
    return {"weights": log_p.T, "bias": log_prior}
  if kind == "gaussian":
    mean, m2 = statistics["mean"], statistics["m2"]
    grand_mean = jnp.sum(counts * mean, axis=0) / jnp.maximum(total, 1.0)
    total_m2 = jnp.sum(m2 + counts * jnp.square(mean - grand_mean[None, :]), axis=0)
    epsilon = var_smoothing * jnp.max(total_m2 / jnp.maximum(total, 1.0))
    return {"mean": mean, "variance": m2 / jnp.maximum(counts, 1.0) + epsilon, "log_prior": log_prior}
  raise ValueError(f"Unknown naive Bayes kind {kind!r}; one of {KINDS}.")


def joint_log_likelihood(kind: str, params: dict, x: jax.Array) -> jax.Array:
  """log p(x, y=c) for every class: `[batch, classes]` from features `[batch, D]`."""
  if kind in ("bernoulli", "multinomial"):
    return jnp.matmul(x, params["weights"], precision=_HIGHEST) + params["bias"][None, :]
  # Gaussian, summed directly: expanding (x - mean)^2 / variance into matrix
  # products cancels catastrophically when a variance is tiny.
  variance = params["variance"]
  log_normaliser = -0.5 * jnp.sum(jnp.log(np.float32(2 * np.pi) * variance), axis=1)
  distance = jnp.sum(jnp.square(x[:, None, :] - params["mean"][None]) / variance[None], axis=-1)
  return (params["log_prior"] + log_normaliser)[None, :] - 0.5 * distance


Task = NaiveBayesTask
