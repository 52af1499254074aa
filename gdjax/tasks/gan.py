"""GAN training: one state pytree and one jitted step for D and G, and the `sample` inference function.

The step is `(state, batch, rng) -> (state, metrics)`, like the classifier's.
It makes `n_critic` discriminator updates, each on its own slice of real
images and fresh noise, then one generator update, then moves the generator's
exponential moving average. G, D, both optimizer states, batch statistics
(batch norm in G, spectral-norm vectors in D), the EMA generator and the
regularisers' state all live in `GANState`, which Orbax saves and restores
whole.

A batch holds `batch_size * n_critic` real images. It is viewed as
`[batch_size, n_critic, ...]`, so critic update `j` takes column `j`: every
device keeps using the rows it already holds and nothing moves between
devices. The first `n_critic - 1` critic updates run in one `lax.scan`, so
the compiled program holds two copies of the update whatever `n_critic` is;
the last one also keeps the generator's VJP, because its fakes drive the
generator update too (G runs forward once for both).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gdjax import config_defaults, gan_losses, gan_regularizers, models, optimizers, samples
from gdjax.errors import ConfigError
from gdjax.tasks.base import InferenceFunction, TensorSpec


def default_config() -> ml_collections.ConfigDict:
  """A DCGAN with the non-saturating loss, Adam 2e-4, beta1 0.5 (Radford et al. 2016)."""
  config = ml_collections.ConfigDict()
  config.task = "gan"
  config.dataset = config_defaults.fashion_mnist_dataset()
  # conv_transpose / conv choose how the (transposed) convolutions are
  # computed, never what: "auto" is the form measured fastest on the backend
  # (gdjax/models/layers.py); "xla" is Flax's own.
  config.model = ml_collections.ConfigDict(
    dict(
      generator=dict(name="dcgan_generator", width=64, use_batch_norm=True, conv_transpose="auto"),
      discriminator=dict(name="dcgan_discriminator", width=64, spectral_norm=False, use_batch_norm=False, conv="auto"),
    )
  )
  config.noise_dim = 100
  config.conditional = False
  config.num_classes = 10
  config.gan_loss = "non_saturating"
  # Comma-separated names from gdjax/gan_regularizers.py, e.g. "r1"; "" for none.
  config.regularizers = ""
  config.regularizer_options = gan_regularizers.default_options()
  config.l2_weight_decay = 0.0  # Coupled L2 on G's and D's kernels (optax.add_decayed_weights).
  config.n_critic = 1
  config.ema_decay = 0.999
  # Decay min(ema_decay, (1 + t) / (10 + t)) at update t, so early EMAs are not mostly init.
  config.ema_warmup = True
  config.batch_size = 64
  config.total_steps = 3000
  config.generator_optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999))
  config.discriminator_optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999))
  config.schedule = ml_collections.ConfigDict(dict(name="constant"))
  config_defaults.add_training_options(config)
  config.eval_every_steps = 1000
  # Shared by every evaluation of generated samples: the same samples (seed,
  # sample ids 0..num_samples-1) scored by each, as `gdjax sample --seed` draws them.
  config.evaluation = ml_collections.ConfigDict(
    dict(
      feature_network="fashion_mnist_cnn",
      feature_network_dir="",  # "" means the copy shipped in gdjax/assets.
      num_samples=10_000,
      batch_size=500,
      sample_seed=0,
      use_ema=True,
    )
  )
  config.evals = ml_collections.ConfigDict()
  config.evals.quality = sample_evaluation(
    config,
    "sample_quality",
    split=config.dataset.get_ref("eval_split").identity(),
    kid_subsets=100,
    kid_subset_size=1000,
    precision_recall_samples=5000,
    precision_recall_k=3,
  )
  config.evals.coverage = sample_evaluation(config, "class_coverage")
  config.evals.grid = config_defaults.evaluation(
    config, "sample_grid", num_samples=100, sample_seed=7, use_ema=config.evaluation.get_ref("use_ema").identity()
  )
  config.checkpoint = config_defaults.checkpoint_options(every_steps=1000, best_metric="quality/fid", best_mode="min")
  return config


def sample_evaluation(config: ml_collections.ConfigDict, evaluator: str, **options) -> ml_collections.ConfigDict:
  """An entry of `config.evals` that scores generated samples, with the options of `config.evaluation`."""
  shared = {name: config.evaluation.get_ref(name).identity() for name in config.evaluation}
  return config_defaults.evaluation(config, evaluator, **shared, **options)


@flax.struct.dataclass
class GANState:
  step: jax.Array
  generator: Any  # {"params": ..., "batch_stats": ...}
  discriminator: Any  # {"params": ..., "batch_stats": ...}
  generator_opt_state: Any
  discriminator_opt_state: Any
  ema_generator: Any  # Same structure as `generator`.
  regularizer_state: Any  # {regulariser name: its state}, e.g. LeCam's anchors.


class UpdateKeys(NamedTuple):
  noise: jax.Array
  regularizers: jax.Array
  augment: jax.Array


def critic_keys(step_rng: jax.Array, index) -> UpdateKeys:
  """Keys of critic update `index` of a step: its noise, its regularisers' draws, its augmentations."""
  return UpdateKeys(*jax.random.split(jax.random.fold_in(step_rng, index), 3))


def generator_keys(step_rng: jax.Array, n_critic: int) -> UpdateKeys:
  """Keys of a step's generator update (its noise is the last critic update's)."""
  return UpdateKeys(*jax.random.split(jax.random.fold_in(step_rng, n_critic), 3))


class GANTask:
  """Binds G, D, the adversarial loss, regularisers and optimizers to pure steps."""

  progress_metrics = ("d_loss", "g_loss")

  def __init__(self, config: ml_collections.ConfigDict, *, gradient_axis: str | None = None, num_devices: int = 1):
    self.config = config
    self.num_classes = config.num_classes if config.conditional else 0
    self.noise_dim = config.noise_dim
    self.n_critic = config.n_critic
    if config.batch_size % num_devices:
      raise ConfigError(f"batch_size={config.batch_size} must be a multiple of the {num_devices} devices for pmap.")
    self.batch_size = config.batch_size // num_devices  # Per device under pmap; global otherwise.
    dtype = models.compute_dtype(config)
    self.generator = models.build_model(config.model.generator, num_classes=self.num_classes, dtype=dtype)
    self.discriminator = models.build_model(config.model.discriminator, num_classes=self.num_classes, dtype=dtype)
    self.adversarial_loss = gan_losses.get_adversarial_loss(config.gan_loss)
    self.regularizers = gan_regularizers.build_regularizers(config)
    self.gradient_axis = gradient_axis  # Regularisers average their batch statistics over it (LeCam's anchors).
    # A D with batch norm scores G's fakes with the fake batch's statistics in
    # the G update too, as in the D update (its running averages are for inference).
    self.discriminator_batch_norm = bool(config.model.discriminator.get("use_batch_norm", False))
    needs_independent = [name for name, reg in self.regularizers.items() if reg.needs_independent_examples]
    if needs_independent and self.discriminator_batch_norm:
      raise ConfigError(
        f"{needs_independent} need a discriminator without batch norm: each score must depend on its own image."
      )
    weight_decay = config.get("l2_weight_decay", 0.0)
    self.generator_optimizer, self.generator_schedule = optimizers.build_optimizer(
      config.generator_optimizer,
      config.schedule,
      config.total_steps,
      weight_decay=weight_decay,
      gradient_axis=gradient_axis,
    )
    self.discriminator_optimizer, _ = optimizers.build_optimizer(
      config.discriminator_optimizer,
      config.schedule,
      config.total_steps,
      weight_decay=weight_decay,
      gradient_axis=gradient_axis,
    )
    self.best_metric = config.checkpoint.best_metric
    self.best_mode = config.checkpoint.best_mode
    image_shape = tuple(config.get("input_shape") or (28, 28, 1))
    inputs = {
      "seed": TensorSpec("int32", (), "noise seed; the same (seed, sample id) gives the same image"),
      "sample_ids": TensorSpec("int32", (-1,), "one id per sample: its noise is drawn from fold_in(key(seed), id)"),
    }
    if self.num_classes:
      inputs["labels"] = TensorSpec("int32", (-1,), f"the class of each sample, in [0, {self.num_classes})")
    self.inference_functions = {
      "sample": InferenceFunction(
        fn=self.sample, inputs=inputs, outputs={"images": TensorSpec("uint8", (-1, *image_shape), "pixels in [0, 255]")}
      )
    }

  @property
  def examples_per_step(self) -> int:
    """Real images one step consumes: `n_critic` discriminator updates' worth."""
    return self.config.batch_size * self.n_critic

  def for_pmap(self, axis_name: str, num_devices: int) -> GANTask:
    return GANTask(self.config, gradient_axis=axis_name, num_devices=num_devices)

  # --- State.

  def init_state(self, rng: jax.Array, image_shape: tuple[int, ...]) -> GANState:
    g_rng, d_rng = jax.random.split(rng)
    noise = jnp.zeros((1, self.noise_dim), jnp.float32)
    labels = jnp.zeros((1,), jnp.int32)
    generator = dict(self.generator.init(g_rng, noise, labels, train=False))
    discriminator = dict(self.discriminator.init(d_rng, jnp.zeros((1, *image_shape)), labels, train=False))
    generator.setdefault("batch_stats", {})
    discriminator.setdefault("batch_stats", {})
    return GANState(
      step=jnp.zeros((), jnp.int32),
      generator=generator,
      discriminator=discriminator,
      generator_opt_state=self.generator_optimizer.init(generator["params"]),
      discriminator_opt_state=self.discriminator_optimizer.init(discriminator["params"]),
      ema_generator=jax.tree.map(jnp.copy, generator),
      regularizer_state={name: reg.init_state() for name, reg in self.regularizers.items()},
    )

  # --- Building blocks.

  def generate(self, generator_variables, noise, labels, *, train: bool):
    """Images from noise; in training also the generator's new batch statistics."""
    if train:
      images, updates = self.generator.apply(generator_variables, noise, labels, train=True, mutable=["batch_stats"])
      return images, updates.get("batch_stats", generator_variables["batch_stats"])
    return self.generator.apply(generator_variables, noise, labels, train=False), generator_variables["batch_stats"]

  def score(self, discriminator_variables, images, labels, *, train: bool):
    """D's raw scores; in training also its updated spectral-norm vectors."""
    if train:
      scores, updates = self.discriminator.apply(
        discriminator_variables, images, labels, train=True, mutable=["batch_stats"]
      )
      return scores, updates.get("batch_stats", discriminator_variables["batch_stats"])
    scores = self.discriminator.apply(discriminator_variables, images, labels, train=False)
    return scores, discriminator_variables["batch_stats"]

  def sample_noise(self, rng, n):
    """Training noise and (for a conditional G) uniformly drawn labels for `n` fakes."""
    noise_rng, label_rng = jax.random.split(rng)
    noise = jax.random.normal(noise_rng, (n, self.noise_dim))
    labels = jax.random.randint(label_rng, (n,), 0, max(self.num_classes, 1))
    return noise, labels

  def augment(self, rng, images):
    """Every regulariser's augmentation in turn (DiffAugment, say); the identity when none augments."""
    for index, regularizer in enumerate(self.regularizers.values()):
      images = regularizer.augment(jax.random.fold_in(rng, index), images)
    return images

  def _score_real_and_fake(self, variables, real, real_labels, fake, fake_labels):
    if variables["batch_stats"]:
      # Stateful D (spectral norm's power iteration): real, then fake, each advancing the state.
      real_scores, batch_stats = self.score(variables, real, real_labels, train=True)
      fake_scores, batch_stats = self.score(
        {"params": variables["params"], "batch_stats": batch_stats}, fake, fake_labels, train=True
      )
      return real_scores, fake_scores, batch_stats
    # Stateless D: one pass over real and fake together, the same scores as two passes.
    scores, batch_stats = self.score(
      variables, jnp.concatenate([real, fake]), jnp.concatenate([real_labels, fake_labels]), train=True
    )
    real_scores, fake_scores = jnp.split(scores, 2)
    return real_scores, fake_scores, batch_stats

  # --- The step.

  def discriminator_update(self, carry, real, real_labels, fake, fake_labels, keys: UpdateKeys):
    """One critic update on `real` and the generated `fake` images (no gradient flows into G).

    `carry` is (discriminator variables, its optimizer state, regulariser
    state); returns it updated, and this update's metrics.
    """
    discriminator, opt_state, regularizer_state = carry
    real_rng, fake_rng = jax.random.split(keys.augment)
    real, fake = self.augment(real_rng, real), self.augment(fake_rng, fake)

    def objective(d_params):
      variables = {"params": d_params, "batch_stats": discriminator["batch_stats"]}
      real_scores, fake_scores, batch_stats = self._score_real_and_fake(variables, real, real_labels, fake, fake_labels)
      adversarial = jnp.mean(self.adversarial_loss.discriminator(real_scores, fake_scores))
      view = gan_regularizers.DiscriminatorView(
        score=lambda images, labels: self.score(variables, images, labels, train=False)[0],
        real=real,
        fake=fake,
        real_labels=real_labels,
        fake_labels=fake_labels,
        real_scores=real_scores,
        fake_scores=fake_scores,
        axis_name=self.gradient_axis,
      )
      total, new_state, metrics = adversarial, {}, {}
      for index, (name, regularizer) in enumerate(self.regularizers.items()):
        term, new_state[name], terms = regularizer.discriminator_loss(
          view, regularizer_state[name], jax.random.fold_in(keys.regularizers, index)
        )
        total = total + term
        metrics.update(terms)
      metrics.update(d_loss=adversarial, d_real=jnp.mean(real_scores), d_fake=jnp.mean(fake_scores))
      return total, (batch_stats, new_state, metrics)

    (_, (batch_stats, regularizer_state, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(
      discriminator["params"]
    )
    updates, opt_state = self.discriminator_optimizer.update(grads, opt_state, discriminator["params"])
    discriminator = {"params": optax.apply_updates(discriminator["params"], updates), "batch_stats": batch_stats}
    metrics["d_grad_norm"] = optax.tree.norm(grads)
    return (discriminator, opt_state, regularizer_state), metrics

  def train_step(self, state: GANState, batch: dict, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    n, b = self.n_critic, self.batch_size
    images = samples.to_float(batch["image"])
    # [n_critic, batch_size, ...]: critic update j takes row j.
    real_all = jnp.moveaxis(images.reshape(b, n, *images.shape[1:]), 1, 0)
    real_labels_all = jnp.moveaxis(batch["label"].reshape(b, n), 1, 0)
    generator = state.generator

    def generator_forward(g_params, noise, labels):
      return self.generate({"params": g_params, "batch_stats": generator["batch_stats"]}, noise, labels, train=True)

    def critic_update(carry, inputs):
      real, real_labels, index = inputs
      keys = critic_keys(step_rng, index)
      noise, fake_labels = self.sample_noise(keys.noise, b)
      fake, _ = generator_forward(generator["params"], noise, fake_labels)
      return self.discriminator_update(carry, real, real_labels, jax.lax.stop_gradient(fake), fake_labels, keys)

    carry = (state.discriminator, state.discriminator_opt_state, state.regularizer_state)
    if n > 1:
      carry, _ = jax.lax.scan(critic_update, carry, (real_all[:-1], real_labels_all[:-1], jnp.arange(n - 1)))

    # The last critic update's fakes also drive the generator update (against
    # the updated discriminator), so G runs forward once and keeps its VJP.
    keys = critic_keys(step_rng, n - 1)
    noise, fake_labels = self.sample_noise(keys.noise, b)
    forward = functools.partial(generator_forward, noise=noise, labels=fake_labels)
    fake, generator_vjp, g_batch_stats = jax.vjp(forward, generator["params"], has_aux=True)
    carry, d_metrics = self.discriminator_update(
      carry, real_all[-1], real_labels_all[-1], jax.lax.stop_gradient(fake), fake_labels, keys
    )
    discriminator, d_opt_state, regularizer_state = carry

    g_keys = generator_keys(step_rng, n)

    def generator_objective(fake):
      seen = self.augment(g_keys.augment, fake)
      scores, _ = self.score(discriminator, seen, fake_labels, train=self.discriminator_batch_norm)
      adversarial = jnp.mean(self.adversarial_loss.generator(scores))
      view = gan_regularizers.DiscriminatorView(
        score=lambda images, labels: self.score(discriminator, images, labels, train=False)[0],
        real=None,
        fake=seen,
        real_labels=None,
        fake_labels=fake_labels,
        real_scores=None,
        fake_scores=scores,
        axis_name=self.gradient_axis,
      )
      total, metrics = adversarial, {}
      for index, (name, regularizer) in enumerate(self.regularizers.items()):
        term, terms = regularizer.generator_loss(
          view, regularizer_state[name], jax.random.fold_in(g_keys.regularizers, index)
        )
        total = total + term
        metrics.update(terms)
      return total, {**metrics, "g_loss": adversarial}

    (_, g_metrics), fake_grads = jax.value_and_grad(generator_objective, has_aux=True)(fake)
    (g_grads,) = generator_vjp(fake_grads)
    updates, g_opt_state = self.generator_optimizer.update(g_grads, state.generator_opt_state, generator["params"])
    generator = {"params": optax.apply_updates(generator["params"], updates), "batch_stats": g_batch_stats}
    decay = ema_decay(self.config.ema_decay, state.step, warmup=self.config.get("ema_warmup", True))
    ema_generator = optax.incremental_update(generator, state.ema_generator, step_size=1.0 - decay)

    metrics = {
      **d_metrics,
      **g_metrics,
      "g_grad_norm": optax.tree.norm(g_grads),
      "learning_rate": self.generator_schedule(state.step),
    }
    new_state = state.replace(
      step=state.step + 1,
      generator=generator,
      discriminator=discriminator,
      generator_opt_state=g_opt_state,
      discriminator_opt_state=d_opt_state,
      ema_generator=ema_generator,
      regularizer_state=regularizer_state,
    )
    return new_state, metrics

  # --- Inference.

  def inference_params(self, state: GANState, *, use_ema: bool = True):
    return {"generator": state.ema_generator if use_ema else state.generator}

  def sample(self, params, inputs) -> dict:
    """uint8 images, one per sample id, whose noise is drawn from `fold_in(key(seed), id)`.

    A sample depends only on (seed, id, label) and the weights, not on the
    batch it is drawn in, so evaluators, `gdjax sample` and served models
    all draw the same image for the same id.
    """
    noise = noise_for_samples(inputs["seed"], inputs["sample_ids"], self.noise_dim)
    labels = inputs["labels"] if self.num_classes else jnp.zeros(noise.shape[:1], jnp.int32)
    images, _ = self.generate(params["generator"], noise, labels, train=False)
    return {"images": samples.to_uint8_on_device(images)}


def noise_for_samples(seed: jax.Array, sample_ids: jax.Array, noise_dim: int) -> jax.Array:
  """`[len(sample_ids), noise_dim]` standard-normal noise, row i drawn from `fold_in(key(seed), sample_ids[i])`."""
  root = jax.random.key(seed)
  keys = jax.vmap(lambda sample_id: jax.random.fold_in(root, sample_id))(sample_ids)
  return jax.vmap(lambda key: jax.random.normal(key, (noise_dim,)))(keys)


def ema_decay(decay: float, step: jax.Array, *, warmup: bool) -> jax.Array:
  """The EMA decay for the update after `step` earlier ones.

  With `warmup`, min(decay, (1 + step) / (10 + step)), as TensorFlow's
  `ExponentialMovingAverage(num_updates=step)`: early averages then follow
  the generator instead of keeping most of the random initialisation
  (0.999 ** 1000 is still 37 %).
  """
  if not warmup:
    return jnp.asarray(decay, jnp.float32)
  step = step.astype(jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


Task = GANTask
