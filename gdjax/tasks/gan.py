"""GAN training: one state pytree and one jitted step for D and G.

The step is `(state, batch, rng) -> (state, metrics)`, like the classifier's.
It makes `n_critic` discriminator updates, each on its own slice of real
images and fresh noise, then one generator update, then moves the generator's
exponential moving average. G, D, both optimizer states, batch statistics
(batch norm in G, spectral-norm vectors in D) and the EMA generator all live
in `GANState`, which Orbax saves and restores whole.

A batch holds `batch_size * n_critic` real images. It is viewed as
`[batch_size, n_critic, ...]`, so critic update `j` takes column `j`: every
device keeps using the rows it already holds and nothing moves between devices.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gdjax import gan_losses, losses, models, optimizers, samples
from gdjax.errors import ConfigError


@flax.struct.dataclass
class GANState:
  step: jax.Array
  generator: Any  # {"params": ..., "batch_stats": ...}
  discriminator: Any  # {"params": ..., "batch_stats": ...}
  generator_opt_state: Any
  discriminator_opt_state: Any
  ema_generator: Any  # Same structure as `generator`.


class GANTask:
  """Binds G, D, the adversarial loss, penalty and optimizers to pure steps."""

  best_metric = "fid"
  best_mode = "min"
  progress_metrics = ("d_loss", "g_loss")

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.num_classes = config.num_classes if config.conditional else 0
    self.noise_dim = config.noise_dim
    self.n_critic = config.n_critic
    self.batch_size = config.batch_size
    dtype = models.compute_dtype(config)
    self.generator = models.build_model(config.model.generator, num_classes=self.num_classes, dtype=dtype)
    self.discriminator = models.build_model(config.model.discriminator, num_classes=self.num_classes, dtype=dtype)
    self.adversarial_loss = gan_losses.get_adversarial_loss(config.gan_loss)
    if config.penalty.name not in gan_losses.PENALTIES:
      raise ConfigError(
        f"Unknown penalty {config.penalty.name!r}. Set --config.penalty.name to one of {gan_losses.PENALTIES}."
      )
    if config.penalty.name != "none" and config.model.discriminator.get("use_batch_norm", False):
      raise ConfigError("Gradient penalties need a discriminator without batch norm.")
    self.generator_optimizer, self.generator_schedule = optimizers.build_optimizer(
      config.generator_optimizer, config.schedule, config.total_steps
    )
    self.discriminator_optimizer, _ = optimizers.build_optimizer(
      config.discriminator_optimizer, config.schedule, config.total_steps
    )

  @property
  def examples_per_step(self) -> int:
    """Real images one step consumes: `n_critic` discriminator updates' worth."""
    return self.batch_size * self.n_critic

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
    return self.discriminator.apply(discriminator_variables, images, labels, train=False), discriminator_variables[
      "batch_stats"
    ]

  def sample_noise(self, rng, n):
    noise_rng, label_rng = jax.random.split(rng)
    noise = jax.random.normal(noise_rng, (n, self.noise_dim))
    labels = jax.random.randint(label_rng, (n,), 0, max(self.num_classes, 1))
    return noise, labels

  def _penalty(self, discriminator_variables, real, fake, real_labels, fake_labels, rng):
    name = self.config.penalty.name
    if name == "none":
      return jnp.zeros(())
    score_fn_real = lambda x: self.score(discriminator_variables, x, real_labels, train=False)[0]
    if name == "r1":
      return jnp.mean(gan_losses.r1_penalty(score_fn_real, real))
    # WGAN-GP interpolates real and fake images; the conditional score uses the real labels.
    return jnp.mean(gan_losses.wgan_gradient_penalty(score_fn_real, real, fake, rng))

  # --- The step.

  def discriminator_update(self, discriminator, opt_state, real, real_labels, fake, fake_labels, rng):
    """One critic update on `real` and the generated `fake` images.

    Returns the new discriminator variables and optimizer state and the
    metrics of this update.
    """
    l2 = self.config.get("l2_weight_decay", 0.0)

    def objective(d_params):
      variables = {"params": d_params, "batch_stats": discriminator["batch_stats"]}
      if discriminator["batch_stats"]:
        # Stateful D (spectral norm's power iteration): real, then fake, each advancing the state.
        real_scores, batch_stats = self.score(variables, real, real_labels, train=True)
        fake_scores, batch_stats = self.score(
          {"params": d_params, "batch_stats": batch_stats}, fake, fake_labels, train=True
        )
      else:
        # Stateless D: one pass over real and fake together, the same scores as two passes.
        scores, batch_stats = self.score(
          variables, jnp.concatenate([real, fake]), jnp.concatenate([real_labels, fake_labels]), train=True
        )
        real_scores, fake_scores = jnp.split(scores, 2)
      adversarial = jnp.mean(self.adversarial_loss.discriminator(real_scores, fake_scores))
      penalty = self._penalty(variables, real, fake, real_labels, fake_labels, rng)
      total = adversarial + self.config.penalty.weight * penalty
      if l2:
        total = total + l2 * losses.l2_penalty(d_params)
      return total, (batch_stats, adversarial, penalty, jnp.mean(real_scores), jnp.mean(fake_scores))

    (_, (batch_stats, d_loss, penalty, d_real, d_fake)), grads = jax.value_and_grad(objective, has_aux=True)(
      discriminator["params"]
    )
    updates, opt_state = self.discriminator_optimizer.update(grads, opt_state, discriminator["params"])
    discriminator = {"params": optax.apply_updates(discriminator["params"], updates), "batch_stats": batch_stats}
    metrics = {
      "d_loss": d_loss,
      "penalty": penalty,
      "d_real": d_real,
      "d_fake": d_fake,
      "d_grad_norm": optax.tree.norm(grads),
    }
    return discriminator, opt_state, metrics

  def train_step(self, state: GANState, batch: dict, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    n, b = self.n_critic, self.batch_size
    images = samples.to_float(batch["image"])
    real_all = images.reshape(b, n, *images.shape[1:])
    real_labels_all = batch["label"].reshape(b, n)
    l2 = self.config.get("l2_weight_decay", 0.0)
    generator = state.generator

    def generator_forward(g_params, noise, labels):
      return self.generate({"params": g_params, "batch_stats": generator["batch_stats"]}, noise, labels, train=True)

    discriminator, d_opt_state = state.discriminator, state.discriminator_opt_state
    for critic_step in range(n):  # Unrolled: n_critic is small and static.
      noise_rng, penalty_rng = jax.random.split(jax.random.fold_in(step_rng, critic_step))
      noise, fake_labels = self.sample_noise(noise_rng, b)
      if critic_step < n - 1:
        fake, _ = generator_forward(generator["params"], noise, fake_labels)
      else:
        # The last critic step's fakes also drive the generator update (against
        # the updated discriminator), so G runs forward once and keeps its VJP.
        forward = functools.partial(generator_forward, noise=noise, labels=fake_labels)
        fake, generator_vjp, g_batch_stats = jax.vjp(forward, generator["params"], has_aux=True)
      discriminator, d_opt_state, d_metrics = self.discriminator_update(
        discriminator,
        d_opt_state,
        real_all[:, critic_step],
        real_labels_all[:, critic_step],
        jax.lax.stop_gradient(fake),
        fake_labels,
        penalty_rng,
      )

    def generator_adversarial_loss(fake):
      scores, _ = self.score(discriminator, fake, fake_labels, train=False)
      return jnp.mean(self.adversarial_loss.generator(scores))

    g_loss, fake_grads = jax.value_and_grad(generator_adversarial_loss)(fake)
    (g_grads,) = generator_vjp(fake_grads)
    if l2:
      g_grads = jax.tree.map(lambda g, r: g + l2 * r, g_grads, jax.grad(losses.l2_penalty)(generator["params"]))
    updates, g_opt_state = self.generator_optimizer.update(g_grads, state.generator_opt_state, generator["params"])
    generator = {"params": optax.apply_updates(generator["params"], updates), "batch_stats": g_batch_stats}
    decay = ema_decay(self.config.ema_decay, state.step, warmup=self.config.get("ema_warmup", True))
    ema_generator = jax.tree.map(lambda e, g: decay * e + (1.0 - decay) * g, state.ema_generator, generator)

    metrics = {
      **d_metrics,
      "g_loss": g_loss,
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
    )
    return new_state, metrics

  # --- Sampling.

  def sample_step(self, state: GANState, noise: jax.Array, labels: jax.Array, *, use_ema: bool = True) -> jax.Array:
    """Images in [-1, 1] from the EMA (default) or raw generator, in inference mode."""
    variables = state.ema_generator if use_ema else state.generator
    return self.generate(variables, noise, labels, train=False)[0]

  def predict_step(self, state, images):
    raise ConfigError("This workdir holds a GAN; use `gdjax sample`, not `gdjax predict`.")


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
