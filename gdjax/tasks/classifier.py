"""Classifier training: state, train step and the `predict` inference function.

The train step is a pure function `(state, batch, rng) -> (state, metrics)`.
`rng` is the run's root key; the step's own key is `fold_in(rng, state.step)`,
so nothing random is stored in the state and a resumed run draws the same
dropout masks and augmentations as an uninterrupted one.

`config.features` chooses what the model sees (`gdjax.features`: [-1, 1]
pixels by default, or the binarized pixels or intensities its naive Bayes
twin sees), in the step and in `predict` alike. With `optimizer.name="lbfgs"`
the step hands optax's L-BFGS the objective on the step's batch for its line
search: with the whole training set as the batch, that is scikit-learn's
full-batch L-BFGS logistic regression.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gdjax import augmentations, config_defaults, features, losses, models, optimizers
from gdjax.errors import ConfigError
from gdjax.tasks.base import InferenceFunction, TensorSpec


def default_config() -> ml_collections.ConfigDict:
  """A CNN on Fashion-MNIST's first 54,000 training images, selected on the last 6,000."""
  config = ml_collections.ConfigDict()
  config.task = "classifier"
  config.dataset = config_defaults.fashion_mnist_dataset()
  config.model = ml_collections.ConfigDict(dict(name="cnn"))
  config.loss = "cross_entropy"
  config.label_smoothing = 0.0
  config.l2_regularization = 0.0  # lambda * |W|^2 / 2 in the objective (an SVM's 1 / C, up to scale).
  config.features = "pixels"  # What the model sees: gdjax.features.FEATURES.
  config.augment = ml_collections.ConfigDict(dict(flip=False, max_shift=0))
  config.batch_size = 128
  config.total_steps = 1000
  config.optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3))
  config.schedule = ml_collections.ConfigDict(dict(name="cosine", warmup_steps=0, end_fraction=0.0))
  config_defaults.add_training_options(config)
  config.eval_every_steps = 500
  config.eval_batch_size = 1000
  config.evals = ml_collections.ConfigDict()
  config.evals.classification = config_defaults.evaluation(
    config,
    "classification",
    split=config.dataset.get_ref("eval_split").identity(),
    batch_size=config.get_ref("eval_batch_size").identity(),
  )
  config.checkpoint = config_defaults.checkpoint_options(
    every_steps=500, best_metric="classification/accuracy", best_mode="max"
  )
  return config


def logistic_regression_config(features: str, C: float, total_steps: int) -> ml_collections.ConfigDict:
  """Multinomial logistic regression as scikit-learn fits it: full-batch L-BFGS on L2-regularised cross-entropy.

  scikit-learn minimises C * sum(CE) + |W|^2 / 2, which has the minimiser of
  mean(CE) + |W|^2 / (2 C N): `l2_regularization` follows `C` and the
  training-set size. The batch is the training set, so `batch_size` and
  `dataset.subset_size` are one field (a smaller value trains on a
  class-balanced subset of that size, drawn under the seed).
  """
  config = default_config()
  config.model = dict(name="linear")
  config.loss = "cross_entropy"
  config.features = features
  config.dataset.subset_size = 54_000
  config.dataset.subset_seed = config.get_ref("seed")
  config.batch_size = config.dataset.get_ref("subset_size")  # Full batch: one field.
  config.C = C  # scikit-learn's inverse regularisation strength.
  config.l2_regularization = 1.0 / (config.get_ref("C") * config.dataset.get_ref("subset_size"))
  config.optimizer = dict(name="lbfgs", learning_rate=1.0, memory_size=10)
  config.schedule = dict(name="constant")
  config.total_steps = total_steps
  config.log_every_steps = 50
  config.eval_every_steps = 0  # Once, at the end: the fit is an optimisation to convergence, not a curve.
  config.checkpoint.every_steps = 250
  return config


@flax.struct.dataclass
class ClassifierState:
  """Everything a classifier run checkpoints, as one pytree of arrays."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


# Optax optimizers whose update needs the objective itself (`value_fn`) for a line search.
LINE_SEARCH_OPTIMIZERS = ("lbfgs",)


class ClassifierTask:
  """Binds a model, loss and optimizer from the config to pure step functions."""

  progress_metrics = ("loss",)

  def __init__(self, config: ml_collections.ConfigDict, *, gradient_axis: str | None = None):
    self.config = config
    self.model = models.build_model(config.model, dtype=models.compute_dtype(config))
    self.loss_fn = losses.get_classification_loss(config.loss)
    if config.get("label_smoothing", 0.0):
      if config.loss != "cross_entropy":
        raise ConfigError("label_smoothing applies to the cross_entropy loss only; set it to 0 for hinge losses.")
      self.loss_fn = functools.partial(self.loss_fn, label_smoothing=config.label_smoothing)
    self.l2_regularization = config.get("l2_regularization", 0.0)
    try:
      self.features = features.check_name(config.get("features", "pixels"))
    except ValueError as e:
      raise ConfigError(str(e)) from None
    self.line_search = config.optimizer.name in LINE_SEARCH_OPTIMIZERS
    if self.line_search and (gradient_axis is not None or config.get("parallelism") == "pmap"):
      raise ConfigError(
        f"optax.{config.optimizer.name}'s line search evaluates the objective on each device's part of the batch "
        "under pmap, so the devices would disagree; use --config.parallelism=jit, where the objective is global."
      )
    self.optimizer, self.schedule = optimizers.build_optimizer(
      config.optimizer, config.schedule, config.total_steps, gradient_axis=gradient_axis
    )
    augment_config = config.get("augment") or ml_collections.ConfigDict()
    self.flip = augment_config.get("flip", False)
    self.max_shift = augment_config.get("max_shift", 0)
    if self.max_shift and self.features != "pixels":
      raise ConfigError(
        f"augment.max_shift fills with -1, black in [-1, 1] pixels but not in features={self.features!r}; set "
        "--config.augment.max_shift=0 or --config.features=pixels."
      )
    self.best_metric = config.checkpoint.best_metric
    self.best_mode = config.checkpoint.best_mode
    image_shape = tuple(config.get("input_shape") or (28, 28, 1))
    num_classes = getattr(self.model, "num_classes", 10)
    self.inference_functions = {
      "predict": InferenceFunction(
        fn=self.predict,
        inputs={"images": TensorSpec("uint8", (-1, *image_shape), "pixels in [0, 255]")},
        outputs={
          "probabilities": TensorSpec("float32", (-1, num_classes), "softmax of the class scores"),
          "labels": TensorSpec("int32", (-1,), "the most probable class"),
        },
      )
    }

  @property
  def examples_per_step(self) -> int:
    return self.config.batch_size

  def for_pmap(self, axis_name: str, num_devices: int) -> ClassifierTask:
    del num_devices  # The step takes whatever batch it is given.
    return ClassifierTask(self.config, gradient_axis=axis_name)

  def init_state(self, rng: jax.Array, image_shape: tuple[int, ...]) -> ClassifierState:
    variables = self.model.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)
    params = variables["params"]
    return ClassifierState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=variables.get("batch_stats", {}),
      opt_state=self.optimizer.init(params),
    )

  def train_step(self, state: ClassifierState, batch: dict, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    augment_rng, dropout_rng = jax.random.split(step_rng)
    images = features.transform(self.features, batch["image"])
    if self.flip or self.max_shift:
      images = augmentations.augment(augment_rng, images, flip=self.flip, max_shift=self.max_shift)

    def objective(params):
      scores, updates = self.model.apply(
        {"params": params, "batch_stats": state.batch_stats},
        images,
        train=True,
        rngs={"dropout": dropout_rng},
        mutable=["batch_stats"],
      )
      data_loss = jnp.mean(self.loss_fn(scores, batch["label"]))
      total = data_loss
      if self.l2_regularization:
        total = total + self.l2_regularization * losses.l2_penalty(params)
      return total, (data_loss, scores, updates.get("batch_stats", {}))

    (total_loss, (data_loss, scores, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    if self.line_search:
      updates, opt_state = self.optimizer.update(
        grads, state.opt_state, state.params, value=total_loss, grad=grads, value_fn=lambda p: objective(p)[0]
      )
    else:
      updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
      "loss": data_loss,
      "objective": total_loss,
      "accuracy": jnp.mean(jnp.argmax(scores, -1) == batch["label"]),
      "grad_norm": optax.tree.norm(grads),
      "param_norm": optax.tree.norm(params),
      "learning_rate": self.schedule(state.step),
    }
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
    return new_state, metrics

  def inference_params(self, state: ClassifierState, *, use_ema: bool = True):
    del use_ema  # No EMA: the trained weights are the model.
    return {"params": state.params, "batch_stats": state.batch_stats}

  def predict(self, params, inputs) -> dict:
    """Class probabilities and labels of uint8 images, in inference mode."""
    scores = self.model.apply(params, features.transform(self.features, inputs["images"]), train=False)
    return {"probabilities": jax.nn.softmax(scores, -1), "labels": jnp.argmax(scores, -1).astype(jnp.int32)}


Task = ClassifierTask
