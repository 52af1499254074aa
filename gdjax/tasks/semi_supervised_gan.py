"""Semi-supervised GAN training (Salimans et al. 2016): a K-class discriminator that is also the classifier.

The discriminator has K class logits; its "real" score is their logsumexp
(the (K+1)-class formulation with the fake logit fixed at zero,
`gdjax.semi_supervised_losses`). Each step:
1. draws a batch of the labelled subset (`dataset.labelled_size` examples,
   class-balanced, chosen under `dataset.labelled_seed`, the run's seed
   unless set) and a batch of the
   whole training split without its labels (the pipeline's two streams, both
   pure functions of the run's seed and the step);
2. updates D on cross-entropy over the labelled batch plus the unsupervised
   terms on the unlabelled batch and on a batch of fakes;
3. updates G by feature matching against the updated D: the squared
   difference between the batch means of D's features on the unlabelled
   real batch and on the fakes;
4. moves the generator's EMA, which the sample evaluators score.

The labelled images are flipped and translated (`config.augment`, gdjax's
augmentations, drawn from the step key). With `consistency_weight` > 0, D
also sees a flipped and translated copy of the unlabelled batch and pays the
squared distance between its class probabilities on the two copies (the
Pi-model's term, as CT-GAN adds it to this GAN), the weight ramped up over
`consistency_ramp_up_steps`; 0, the default, is Salimans et al.'s loss.
With `entropy_weight` > 0, D also pays the mean entropy of its class
probabilities on the unlabelled batch (entropy minimisation). With
`discriminator_ema_decay` > 0 the state keeps a moving average of D's weights
beside them (`discriminator["ema_params"]`), and the average classifies.

With `supervised_only` the step is the baseline every semi-supervised figure
is compared with: the same discriminator, labelled stream, augmentation,
optimizer, steps and batch size, trained on the labelled cross-entropy alone
(G is never updated; with `consistency_weight` > 0, the Pi-model without a
GAN).

Inference functions: `predict` (D as the classifier: uint8 images ->
softmax over the K classes and the most probable class, no noise or
dropout) and `sample` (as a GAN's: seed and sample ids -> uint8 images).

References:
  Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen, "Improved Techniques
  for Training GANs", NeurIPS 2016.
  Laine & Aila, "Temporal Ensembling for Semi-Supervised Learning", ICLR 2017.
  Oliver, Odena, Raffel, Cubuk & Goodfellow, "Realistic Evaluation of Deep
  Semi-Supervised Learning Algorithms", NeurIPS 2018 (a labelled validation
  set of realistic size: 500 images here).
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gdjax import augmentations, config_defaults, models, optimizers, samples
from gdjax import semi_supervised_losses as losses
from gdjax.errors import ConfigError
from gdjax.tasks import gan
from gdjax.tasks.base import InferenceFunction, TensorSpec


def default_config() -> ml_collections.ConfigDict:
  """Salimans et al.'s MNIST recipe on Fashion-MNIST with 100 labels: MLP G and D, Adam 3e-3, batch 100."""
  config = ml_collections.ConfigDict()
  config.task = "semi_supervised_gan"
  config.dataset = config_defaults.fashion_mnist_dataset()
  # The labelled subset of train[:54000]; every image of the split feeds the unlabelled stream.
  config.dataset.labelled_size = 100
  config.dataset.labelled_seed = 0  # Follows the run's seed unless set (config_defaults.add_training_options).
  config.dataset.labelled_batch_size = 100
  # A realistic labelled validation set (Oliver et al. 2018): 500 of the 6,000 held-out images.
  config.dataset.eval_split = "train[54000:54500]"
  config.model = ml_collections.ConfigDict(
    dict(
      generator=dict(name="mlp_generator", hidden_sizes=(500, 500), use_batch_norm=True, output_activation="sigmoid"),
      discriminator=dict(
        name="semi_supervised_discriminator",
        kind="mlp",
        hidden_sizes=(1000, 500, 250, 250, 250),
        input_noise=0.3,  # "mlp": std of the Gaussian noise on the pixels ([0, 1] scale) in training.
        hidden_noise=0.5,  # "mlp": std of the Gaussian noise after each hidden layer in training.
        width=64,
      ),
    )
  )
  config.noise_dim = 100
  config.num_classes = 10
  config.unsupervised_weight = 1.0
  # The Pi-model's consistency term on the unlabelled batch (0: off, Salimans et al.'s loss as published),
  # its weight ramped up over the first `consistency_ramp_up_steps` steps.
  config.consistency_weight = 0.0
  config.consistency_ramp_up_steps = 0
  # Entropy minimisation on the unlabelled batch (Grandvalet & Bengio 2005; Dai et al. 2017); 0: off.
  config.entropy_weight = 0.0
  # An exponential moving average of D's weights, which then classifies (`predict`, the classification
  # evaluator); 0: off, the trained weights classify.
  config.discriminator_ema_decay = 0.0
  config.supervised_only = False
  config.augment = ml_collections.ConfigDict(dict(flip=True, max_shift=2))
  config.ema_decay = 0.999
  config.ema_warmup = True
  config.batch_size = 100  # Unlabelled images per step; as many fakes.
  config.total_steps = 20_000
  config.generator_optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=3e-3, b1=0.5, b2=0.999))
  config.discriminator_optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=3e-3, b1=0.5, b2=0.999))
  config.schedule = ml_collections.ConfigDict(dict(name="cosine", warmup_steps=0, end_fraction=0.0))
  config_defaults.add_training_options(config)
  config.eval_every_steps = 1000
  config.eval_batch_size = 500
  config.evaluation = ml_collections.ConfigDict(
    dict(
      feature_network="fashion_mnist_cnn",
      feature_network_dir="",
      num_samples=10_000,
      batch_size=500,
      sample_seed=0,
      use_ema=True,
    )
  )
  config.evals = ml_collections.ConfigDict()
  config.evals.classification = config_defaults.evaluation(
    config,
    "classification",
    split=config.dataset.get_ref("eval_split").identity(),
    batch_size=config.get_ref("eval_batch_size").identity(),
  )
  # The generator's metrics, against the whole held-out split: at the last step and in `gdjax eval`.
  config.evals.quality = gan.sample_evaluation(
    config,
    "sample_quality",
    split="train[54000:]",
    kid_subsets=100,
    kid_subset_size=1000,
    precision_recall_samples=5000,
    precision_recall_k=3,
  )
  config.evals.quality.every_steps = 0
  config.evals.coverage = gan.sample_evaluation(config, "class_coverage")
  config.evals.coverage.every_steps = 0
  config.evals.grid = config_defaults.evaluation(config, "sample_grid", num_samples=100, sample_seed=7, use_ema=True)
  config.checkpoint = config_defaults.checkpoint_options(
    every_steps=1000, best_metric="classification/accuracy", best_mode="max"
  )
  return config


@flax.struct.dataclass
class SemiSupervisedGANState:
  step: jax.Array
  generator: Any  # {"params": ..., "batch_stats": ...}
  discriminator: Any  # {"params": ...}, and {"ema_params": ...} with `discriminator_ema_decay` > 0.
  generator_opt_state: Any
  discriminator_opt_state: Any
  ema_generator: Any


class SemiSupervisedGANTask:
  """Binds G, the K-class D and both optimizers to one pure step."""

  progress_metrics = ("d_supervised_loss", "labelled_accuracy")

  def __init__(self, config: ml_collections.ConfigDict, *, gradient_axis: str | None = None, num_devices: int = 1):
    self.config = config
    self.num_classes = int(config.num_classes)
    self.noise_dim = int(config.noise_dim)
    self.supervised_only = bool(config.get("supervised_only", False))
    self.unsupervised_weight = float(config.get("unsupervised_weight", 1.0))
    self.consistency_weight = float(config.get("consistency_weight", 0.0))
    self.consistency_ramp_up_steps = int(config.get("consistency_ramp_up_steps", 0))
    self.entropy_weight = float(config.get("entropy_weight", 0.0))
    self.discriminator_ema_decay = float(config.get("discriminator_ema_decay", 0.0))
    if self.entropy_weight < 0:
      raise ConfigError(f"entropy_weight={self.entropy_weight} must be >= 0 (0 switches entropy minimisation off).")
    if not 0 <= self.discriminator_ema_decay < 1:
      raise ConfigError(
        f"discriminator_ema_decay={self.discriminator_ema_decay} must be in [0, 1): 0 switches the "
        "discriminator's EMA off, 0.999 averages over about the last 1,000 steps."
      )
    if self.consistency_weight < 0:
      raise ConfigError(
        f"consistency_weight={self.consistency_weight} must be >= 0 (0 switches the consistency term off)."
      )
    labelled_batch_size = int(config.dataset.get("labelled_batch_size", 0) or 0)
    if not config.dataset.get("labelled_size") or not labelled_batch_size:
      raise ConfigError(
        "A semi-supervised GAN needs a labelled subset: set --config.dataset.labelled_size (e.g. 100) and "
        "--config.dataset.labelled_batch_size."
      )
    for name, size in (("batch_size", config.batch_size), ("dataset.labelled_batch_size", labelled_batch_size)):
      if size % num_devices:
        raise ConfigError(f"{name}={size} must be a multiple of the {num_devices} devices for pmap.")
    self.batch_size = config.batch_size // num_devices  # Per device under pmap; global otherwise.
    dtype = models.compute_dtype(config)
    self.generator = models.build_model(config.model.generator, dtype=dtype)
    self.discriminator = models.build_model(config.model.discriminator, num_classes=self.num_classes, dtype=dtype)
    self.gradient_axis = gradient_axis
    self.generator_optimizer, self.schedule = optimizers.build_optimizer(
      config.generator_optimizer, config.schedule, config.total_steps, gradient_axis=gradient_axis
    )
    self.discriminator_optimizer, _ = optimizers.build_optimizer(
      config.discriminator_optimizer, config.schedule, config.total_steps, gradient_axis=gradient_axis
    )
    self.flip = bool(config.augment.get("flip", False))
    self.max_shift = int(config.augment.get("max_shift", 0))
    self.best_metric = config.checkpoint.best_metric
    self.best_mode = config.checkpoint.best_mode
    image_shape = tuple(config.get("input_shape") or (28, 28, 1))
    self.inference_functions = {
      "predict": InferenceFunction(
        fn=self.predict,
        inputs={"images": TensorSpec("uint8", (-1, *image_shape), "pixels in [0, 255]")},
        outputs={
          "probabilities": TensorSpec("float32", (-1, self.num_classes), "softmax of the discriminator's class logits"),
          "labels": TensorSpec("int32", (-1,), "the most probable class"),
        },
      ),
      "sample": InferenceFunction(
        fn=self.sample,
        inputs={
          "seed": TensorSpec("int32", (), "noise seed; the same (seed, sample id) gives the same image"),
          "sample_ids": TensorSpec("int32", (-1,), "one id per sample: its noise is drawn from fold_in(key(seed), id)"),
        },
        outputs={"images": TensorSpec("uint8", (-1, *image_shape), "pixels in [0, 255]")},
      ),
    }

  @property
  def examples_per_step(self) -> int:
    """Unlabelled images one step consumes (the labelled stream adds `dataset.labelled_batch_size`)."""
    return self.config.batch_size

  def for_pmap(self, axis_name: str, num_devices: int) -> SemiSupervisedGANTask:
    return SemiSupervisedGANTask(self.config, gradient_axis=axis_name, num_devices=num_devices)

  def init_state(self, rng: jax.Array, image_shape: tuple[int, ...]) -> SemiSupervisedGANState:
    g_rng, d_rng = jax.random.split(rng)
    generator = dict(self.generator.init(g_rng, jnp.zeros((1, self.noise_dim)), train=False))
    generator.setdefault("batch_stats", {})
    discriminator = {"params": self.discriminator.init(d_rng, jnp.zeros((1, *image_shape)), train=False)["params"]}
    if self.discriminator_ema_decay:
      discriminator["ema_params"] = jax.tree.map(jnp.copy, discriminator["params"])
    return SemiSupervisedGANState(
      step=jnp.zeros((), jnp.int32),
      generator=generator,
      discriminator=discriminator,
      generator_opt_state=self.generator_optimizer.init(generator["params"]),
      discriminator_opt_state=self.discriminator_optimizer.init(discriminator["params"]),
      ema_generator=jax.tree.map(jnp.copy, generator),
    )

  # --- Building blocks.

  def classify(self, d_params, images, rng=None):
    """(logits, features) of images in [-1, 1]; with `rng`, in training mode (noise and dropout drawn from it)."""
    if rng is None:
      return self.discriminator.apply({"params": d_params}, images, train=False)
    noise_rng, dropout_rng = jax.random.split(rng)
    return self.discriminator.apply(
      {"params": d_params}, images, train=True, rngs={"noise": noise_rng, "dropout": dropout_rng}
    )

  def generate(self, generator_variables, noise):
    """Fakes in [-1, 1] in training mode, and G's new batch statistics."""
    images, updates = self.generator.apply(generator_variables, noise, train=True, mutable=["batch_stats"])
    return images, updates.get("batch_stats", generator_variables["batch_stats"])

  # --- The step.

  def train_step(self, state: SemiSupervisedGANState, batch: dict, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    augment_rng, d_rng, g_noise_rng, g_rng = jax.random.split(step_rng, 4)
    labelled = samples.to_float(batch["labelled_image"])
    if self.flip or self.max_shift:
      labelled = augmentations.augment(augment_rng, labelled, flip=self.flip, max_shift=self.max_shift)
    labels = batch["labelled_label"]
    n_labelled = labelled.shape[0]
    unlabelled = samples.to_float(batch["image"])
    n_unlabelled = unlabelled.shape[0]
    if self.consistency_weight:
      # The second view of the unlabelled batch: flipped and shifted as the labelled images are; D's noise
      # and dropout differ between the two copies in any case.
      second_view = augmentations.augment(
        jax.random.fold_in(augment_rng, 1), unlabelled, flip=self.flip, max_shift=self.max_shift
      )
      consistency_weight = self.consistency_weight * losses.consistency_ramp_up(
        state.step, self.consistency_ramp_up_steps
      )

    def add_consistency(loss, parts, first_view_logits, second_view_logits):
      """The loss plus the weighted consistency between D's logits on the unlabelled batch's two views."""
      term = jnp.mean(losses.consistency(first_view_logits, second_view_logits))
      parts.update(d_consistency_loss=term, consistency_weight=consistency_weight)
      return loss + consistency_weight * term, parts

    def add_entropy(loss, parts, unlabelled_logits):
      """The loss plus the weighted mean entropy of D's class probabilities on the unlabelled batch."""
      term = jnp.mean(losses.class_entropy(unlabelled_logits))
      parts.update(d_entropy=term)
      return loss + self.entropy_weight * term, parts

    if self.supervised_only:

      def objective(d_params):
        images = [labelled]
        if self.consistency_weight or self.entropy_weight:
          images.append(unlabelled)
        if self.consistency_weight:
          images.append(second_view)
        logits, _ = self.classify(d_params, jnp.concatenate(images), d_rng)
        labelled_logits = logits[:n_labelled]
        unlabelled_logits = logits[n_labelled : n_labelled + n_unlabelled]
        loss = jnp.mean(losses.supervised_cross_entropy(labelled_logits, labels))
        parts = {"d_supervised_loss": loss}
        if self.consistency_weight:
          loss, parts = add_consistency(loss, parts, unlabelled_logits, logits[n_labelled + n_unlabelled :])
        if self.entropy_weight:
          loss, parts = add_entropy(loss, parts, unlabelled_logits)
        return loss, (labelled_logits, parts)

      (_, (logits, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(state.discriminator["params"])
      d_params, d_opt_state = self._apply(
        self.discriminator_optimizer, grads, state.discriminator_opt_state, state.discriminator["params"]
      )
      metrics.update(labelled_accuracy=jnp.mean(jnp.argmax(logits, -1) == labels), d_grad_norm=optax.tree.norm(grads))
      metrics["learning_rate"] = self.schedule(state.step)
      return state.replace(
        step=state.step + 1,
        discriminator=self._discriminator_after(state, d_params),
        discriminator_opt_state=d_opt_state,
      ), metrics

    noise = jax.random.normal(g_noise_rng, (self.batch_size, self.noise_dim))
    forward = functools.partial(self.generate, noise=noise)
    generator = state.generator
    fake, generator_vjp, g_batch_stats = jax.vjp(
      lambda g_params: forward({"params": g_params, "batch_stats": generator["batch_stats"]}),
      generator["params"],
      has_aux=True,
    )

    def d_objective(d_params):
      # One pass over all batches: D has no batch statistics, so the scores are those of separate passes.
      images = [labelled, unlabelled, jax.lax.stop_gradient(fake)]
      if self.consistency_weight:
        images.append(second_view)
      logits, _ = self.classify(d_params, jnp.concatenate(images), d_rng)
      labelled_logits = logits[:n_labelled]
      unlabelled_logits = logits[n_labelled : n_labelled + n_unlabelled]
      fake_logits = logits[n_labelled + n_unlabelled : n_labelled + n_unlabelled + fake.shape[0]]
      loss, parts = losses.discriminator_loss(
        labelled_logits, labels, unlabelled_logits, fake_logits, self.unsupervised_weight
      )
      if self.consistency_weight:
        second_view_logits = logits[n_labelled + n_unlabelled + fake.shape[0] :]
        loss, parts = add_consistency(loss, parts, unlabelled_logits, second_view_logits)
      if self.entropy_weight:
        loss, parts = add_entropy(loss, parts, unlabelled_logits)
      parts.update(
        labelled_accuracy=jnp.mean(jnp.argmax(labelled_logits, -1) == labels),
        d_real=jnp.mean(jax.nn.sigmoid(losses.real_score(unlabelled_logits))),
        d_fake=jnp.mean(jax.nn.sigmoid(losses.real_score(fake_logits))),
      )
      return loss, parts

    (_, metrics), d_grads = jax.value_and_grad(d_objective, has_aux=True)(state.discriminator["params"])
    d_params, d_opt_state = self._apply(
      self.discriminator_optimizer, d_grads, state.discriminator_opt_state, state.discriminator["params"]
    )

    def g_objective(fake):
      # Feature matching against the updated D, in training mode, as in Salimans et al.'s code.
      _, features = self.classify(d_params, jnp.concatenate([unlabelled, fake]), g_rng)
      real_features, fake_features = jnp.split(features, 2)
      return losses.feature_matching(jax.lax.stop_gradient(real_features), fake_features)

    g_loss, fake_grads = jax.value_and_grad(g_objective)(fake)
    (g_grads,) = generator_vjp(fake_grads)
    g_params, g_opt_state = self._apply(
      self.generator_optimizer, g_grads, state.generator_opt_state, generator["params"]
    )
    generator = {"params": g_params, "batch_stats": g_batch_stats}
    decay = gan.ema_decay(self.config.ema_decay, state.step, warmup=self.config.get("ema_warmup", True))
    ema_generator = optax.incremental_update(generator, state.ema_generator, step_size=1.0 - decay)
    metrics.update(
      g_feature_matching=g_loss,
      d_grad_norm=optax.tree.norm(d_grads),
      g_grad_norm=optax.tree.norm(g_grads),
      learning_rate=self.schedule(state.step),
    )
    new_state = state.replace(
      step=state.step + 1,
      generator=generator,
      discriminator=self._discriminator_after(state, d_params),
      generator_opt_state=g_opt_state,
      discriminator_opt_state=d_opt_state,
      ema_generator=ema_generator,
    )
    return new_state, metrics

  def _discriminator_after(self, state: SemiSupervisedGANState, d_params) -> dict:
    """D's variables after this step's update: its new weights, and their moving average when it is kept."""
    if not self.discriminator_ema_decay:
      return {"params": d_params}
    decay = gan.ema_decay(self.discriminator_ema_decay, state.step, warmup=self.config.get("ema_warmup", True))
    ema_params = optax.incremental_update(d_params, state.discriminator["ema_params"], step_size=1.0 - decay)
    return {"params": d_params, "ema_params": ema_params}

  @staticmethod
  def _apply(optimizer, grads, opt_state, params):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  # --- Inference.

  def inference_params(self, state: SemiSupervisedGANState, *, use_ema: bool = True):
    weights = "ema_params" if use_ema and "ema_params" in state.discriminator else "params"
    return {
      "discriminator": {"params": state.discriminator[weights]},
      "generator": state.ema_generator if use_ema else state.generator,
    }

  def predict(self, params, inputs) -> dict:
    """The discriminator as a K-class classifier of uint8 images (no noise, no dropout)."""
    logits, _ = self.classify(params["discriminator"]["params"], samples.to_float(inputs["images"]))
    return {"probabilities": jax.nn.softmax(logits, -1), "labels": jnp.argmax(logits, -1).astype(jnp.int32)}

  def sample(self, params, inputs) -> dict:
    """uint8 images whose noise is drawn from `fold_in(key(seed), id)`, as a GAN's `sample`."""
    noise = gan.noise_for_samples(inputs["seed"], inputs["sample_ids"], self.noise_dim)
    images = self.generator.apply(params["generator"], noise, train=False)
    return {"images": samples.to_uint8_on_device(images)}


Task = SemiSupervisedGANTask
