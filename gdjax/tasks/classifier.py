"""Classifier training: state, train step, eval step and inference.

The train step is a pure function `(state, batch, rng) -> (state, metrics)`.
`rng` is the run's root key; the step's own key is `fold_in(rng, state.step)`,
so nothing random is stored in the state and a resumed run draws the same
dropout masks and augmentations as an uninterrupted one.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gdjax import augmentations, losses, models, optimizers, samples
from gdjax.errors import ConfigError


@flax.struct.dataclass
class ClassifierState:
  """Everything a classifier run checkpoints, as one pytree of arrays."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


class ClassifierTask:
  """Binds a model, loss and optimizer from the config to pure step functions."""

  best_metric = "accuracy"
  best_mode = "max"
  progress_metrics = ("loss",)

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.model = models.build_model(config.model, dtype=models.compute_dtype(config))
    self.loss_fn = losses.get_classification_loss(config.loss)
    if config.get("label_smoothing", 0.0):
      if config.loss != "cross_entropy":
        raise ConfigError("label_smoothing applies to the cross_entropy loss only; set it to 0 for hinge losses.")
      self.loss_fn = functools.partial(self.loss_fn, label_smoothing=config.label_smoothing)
    self.l2_regularization = config.get("l2_regularization", 0.0)
    self.optimizer, self.schedule = optimizers.build_optimizer(config.optimizer, config.schedule, config.total_steps)
    augment_config = config.get("augment") or ml_collections.ConfigDict()
    self.flip = augment_config.get("flip", False)
    self.max_shift = augment_config.get("max_shift", 0)

  @property
  def examples_per_step(self) -> int:
    return self.config.batch_size

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
    images = samples.to_float(batch["image"])
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

  def scores(self, state: ClassifierState, images: jax.Array) -> jax.Array:
    """Class scores (logits or SVM decision values) in inference mode."""
    images = samples.to_float(images)
    return self.model.apply({"params": state.params, "batch_stats": state.batch_stats}, images, train=False)

  def eval_step(self, state: ClassifierState, batch: dict) -> dict:
    """Masked sums over one batch; `finalize_eval` turns their totals into means."""
    scores = self.scores(state, batch["image"])
    mask = batch["mask"]
    return {
      "loss_sum": jnp.sum(self.loss_fn(scores, batch["label"]) * mask),
      "correct": jnp.sum((jnp.argmax(scores, -1) == batch["label"]) * mask),
      "count": jnp.sum(mask),
    }

  @staticmethod
  def finalize_eval(totals: dict) -> dict:
    count = max(float(totals["count"]), 1.0)
    return {
      "accuracy": float(totals["correct"]) / count,
      "loss": float(totals["loss_sum"]) / count,
      "num_examples": int(totals["count"]),
    }

  def predict_step(self, state: ClassifierState, images: jax.Array) -> dict:
    scores = self.scores(state, images)
    return {"label": jnp.argmax(scores, -1), "probabilities": jax.nn.softmax(scores, -1)}
