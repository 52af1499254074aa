"""Variational autoencoder training: p(x) = ∫ p(x|z) p(z) dz, fitted by its ELBO or importance-weighted bound.

The step is `(state, batch, rng) -> (state, metrics)` like every task's. For
a Bernoulli decoder each batch is binarised afresh from the step key, x ~
Bernoulli(pixel / 255) (dynamic binarisation, the standard protocol for
density estimation on (Fashion-)MNIST); a discretised-logistic decoder models
the 8-bit pixels themselves. The objective is the ELBO (closed-form KL, with
an optional linear KL warm-up) or, with `objective="iwae"`, the
importance-weighted bound with `num_importance_samples` samples.

Inference functions: `encode` (images -> q(z|x)), `decode` (latents -> the
decoder's mean image), `sample` (seed and sample ids -> images, z from
`fold_in(key(seed), id)`), and `log_weights` (images and standard-normal
noise -> log p(x|z) + log p(z) - log q(z|x) for z = mean + sigma * noise),
from which the likelihood evaluator builds the ELBO and the k-sample
estimate of log p(x).
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gdjax import config_defaults, models, optimizers, samples, vae_objectives
from gdjax.errors import ConfigError
from gdjax.models.vae import VAE
from gdjax.tasks.base import InferenceFunction, TensorSpec

OBJECTIVES = ("elbo", "iwae")


def default_config() -> ml_collections.ConfigDict:
  """An MLP VAE with a Bernoulli decoder on dynamically binarised Fashion-MNIST."""
  config = ml_collections.ConfigDict()
  config.task = "vae"
  config.dataset = config_defaults.fashion_mnist_dataset()
  config.model = ml_collections.ConfigDict(
    dict(name="vae", architecture="mlp", latent_dim=32, hidden_sizes=(512, 256), likelihood="bernoulli")
  )
  config.objective = "elbo"
  config.num_importance_samples = 1  # k of the importance-weighted bound when objective="iwae".
  config.kl_warmup_steps = 0  # ELBO only: the KL term's weight rises linearly from 0 to 1 over these steps.
  config.batch_size = 128
  config.total_steps = 20_000
  config.optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3))
  config.schedule = ml_collections.ConfigDict(dict(name="cosine", warmup_steps=0, end_fraction=0.0))
  config_defaults.add_training_options(config)
  config.eval_every_steps = 5000
  config.evals = ml_collections.ConfigDict()
  split = config.dataset.get_ref("eval_split")
  # During training: a cheap bound (k = 100) on the validation split. The k = 5,000 estimate of
  # log p(x) runs only in `gdjax eval` (every_steps = -1), e.g. `gdjax eval --split test`.
  config.evals.likelihood = config_defaults.evaluation(
    config, "likelihood", split=split.identity(), num_importance_samples=100, chunk_size=100, batch_size=100,
    num_examples=0, seed=0, binarize=True,
  )  # fmt: skip
  config.evals.likelihood_k5000 = config_defaults.evaluation(
    config, "likelihood", split=split.identity(), num_importance_samples=5000, chunk_size=500, batch_size=100,
    num_examples=0, seed=0, binarize=True,
  )  # fmt: skip
  config.evals.likelihood_k5000.every_steps = -1
  config.evaluation = ml_collections.ConfigDict(
    dict(feature_network="fashion_mnist_cnn", feature_network_dir="", num_samples=10_000, batch_size=500, sample_seed=0)
  )
  shared = {name: config.evaluation.get_ref(name).identity() for name in config.evaluation}
  config.evals.quality = config_defaults.evaluation(
    config, "sample_quality", split=split.identity(), **shared, kid_subsets=100, kid_subset_size=1000,
    precision_recall_samples=5000, precision_recall_k=3,
  )  # fmt: skip
  config.evals.coverage = config_defaults.evaluation(config, "class_coverage", **shared)
  config.evals.grid = config_defaults.evaluation(config, "sample_grid", num_samples=100, sample_seed=7)
  config.evals.pictures = config_defaults.evaluation(
    config, "vae_pictures", split=split.identity(), num_reconstructions=50, num_interpolations=8, num_scatter=5000
  )
  config.checkpoint = config_defaults.checkpoint_options(
    every_steps=5000, best_metric="likelihood/negative_log_likelihood", best_mode="min"
  )
  return config


@flax.struct.dataclass
class VAEState:
  step: jax.Array
  params: Any  # The encoder's and decoder's, one tree.
  opt_state: Any


class VAETask:
  """Binds a VAE, its objective and optimizer from the config to pure step and inference functions."""

  progress_metrics = ("loss", "kl")

  def __init__(self, config: ml_collections.ConfigDict, *, gradient_axis: str | None = None):
    self.config = config
    self.model = models.build_model(config.model, dtype=models.compute_dtype(config))
    if not isinstance(self.model, VAE):
      raise ConfigError(f"task 'vae' needs config.model.name='vae'; got {config.model.name!r}.")
    if config.objective not in OBJECTIVES:
      raise ConfigError(f"Unknown objective {config.objective!r}. Set --config.objective to one of {OBJECTIVES}.")
    self.num_samples = int(config.num_importance_samples) if config.objective == "iwae" else 1
    if self.num_samples < 1:
      raise ConfigError("--config.num_importance_samples must be at least 1.")
    self.binarized = self.model.likelihood == "bernoulli"
    for name, entry in (config.get("evals") or {}).items():
      if entry.get("type") == "likelihood" and bool(entry.get("binarize", True)) != self.binarized:
        raise ConfigError(
          f"config.evals.{name}.binarize must be {self.binarized} for a {self.model.likelihood} decoder: the "
          "likelihood is measured on what the decoder models (binarised images for Bernoulli, pixels otherwise)."
        )
    self.latent_dim = self.model.latent_dim
    self.optimizer, self.schedule = optimizers.build_optimizer(
      config.optimizer, config.schedule, config.total_steps, gradient_axis=gradient_axis
    )
    self.best_metric = config.checkpoint.best_metric
    self.best_mode = config.checkpoint.best_mode
    image = TensorSpec("uint8", (-1, *self.model.image_shape), "pixels in [0, 255]")
    latents = TensorSpec("float32", (-1, self.latent_dim), "points z of the latent space")
    self.inference_functions = {
      "encode": InferenceFunction(
        fn=self.encode,
        inputs={"images": image},
        outputs={
          "mean": TensorSpec("float32", (-1, self.latent_dim), "mean of q(z|x)"),
          "log_variance": TensorSpec("float32", (-1, self.latent_dim), "log-variance of q(z|x)"),
        },
      ),
      "decode": InferenceFunction(fn=self.decode, inputs={"latents": latents}, outputs={"images": image}),
      "sample": InferenceFunction(
        fn=self.sample,
        inputs={
          "seed": TensorSpec("int32", (), "the same (seed, sample id) gives the same image"),
          "sample_ids": TensorSpec("int32", (-1,), "z of sample i is drawn from fold_in(key(seed), id)"),
        },
        outputs={"images": image},
      ),
      "log_weights": InferenceFunction(
        fn=self.log_weights,
        inputs={
          "images": TensorSpec(
            "uint8", (-1, *self.model.image_shape), "observations: binary images as 0/255 for a Bernoulli decoder"
          ),
          "noise": TensorSpec("float32", (-1, -1, self.latent_dim), "k standard-normal draws per image"),
        },
        outputs={"log_weights": TensorSpec("float32", (-1, -1), "log p(x|z) + log p(z) - log q(z|x), nats")},
      ),
    }

  @property
  def examples_per_step(self) -> int:
    return self.config.batch_size

  def for_pmap(self, axis_name: str, num_devices: int) -> VAETask:
    del num_devices
    return VAETask(self.config, gradient_axis=axis_name)

  def init_state(self, rng: jax.Array, image_shape: tuple[int, ...]) -> VAEState:
    params = self.model.init(rng, jnp.zeros((1, *image_shape), jnp.float32))["params"]
    return VAEState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.optimizer.init(params))

  # --- Observations and the decoder's likelihood.

  def observe(self, images: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """What the model sees of uint8 images: a Bernoulli(pixel/255) draw as {0, 1} (or, without `rng`,
    pixels >= 128), or the pixels in [-1, 1] for the logistic decoder."""
    if not self.binarized:
      return samples.to_float(images)
    if rng is None:
      return (images >= 128).astype(jnp.float32)
    return jax.random.bernoulli(rng, images.astype(jnp.float32) / 255.0).astype(jnp.float32)

  def _encoder_input(self, observations: jax.Array) -> jax.Array:
    return 2.0 * observations - 1.0 if self.binarized else observations

  def log_likelihood(self, decoded: dict, observations: jax.Array) -> jax.Array:
    """log p(x|z) per example, in nats."""
    if self.binarized:
      return vae_objectives.bernoulli_log_likelihood(decoded["logits"], observations)
    return vae_objectives.discretized_logistic_log_likelihood(decoded["mean"], decoded["log_scale"], observations)

  def decoder_mean(self, decoded: dict) -> jax.Array:
    """E[x|z] as an image in [-1, 1]: the Bernoulli probabilities, or the logistic's mean."""
    return 2.0 * jax.nn.sigmoid(decoded["logits"]) - 1.0 if self.binarized else decoded["mean"]

  # --- The step.

  def train_step(self, state: VAEState, batch: dict, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    binarize_rng, noise_rng = jax.random.split(step_rng)
    observations = self.observe(batch["image"], binarize_rng)
    batch_size, k = observations.shape[0], self.num_samples
    warmup = self.config.get("kl_warmup_steps", 0)
    kl_weight = jnp.minimum(1.0, (state.step + 1.0) / warmup) if warmup and k == 1 else 1.0

    def objective(params):
      mean, log_variance = self.model.apply({"params": params}, self._encoder_input(observations), method=VAE.encode)
      noise = jax.random.normal(noise_rng, (batch_size, k, self.latent_dim))
      z = mean[:, None] + jnp.exp(0.5 * log_variance)[:, None] * noise
      decoded = self.model.apply({"params": params}, z.reshape(batch_size * k, -1), method=VAE.decode)
      repeated = jnp.repeat(observations, k, axis=0)
      log_px = self.log_likelihood(decoded, repeated).reshape(batch_size, k)
      kl = vae_objectives.kl_to_standard_normal(mean, log_variance)
      if k == 1:
        bound = log_px[:, 0] - kl
        loss = -jnp.mean(log_px[:, 0] - kl_weight * kl)
      else:
        log_weights = (
          log_px
          + vae_objectives.standard_normal_log_density(z)
          - vae_objectives.gaussian_log_density(z, mean[:, None], log_variance[:, None])
        )
        bound = vae_objectives.importance_weighted_bound(log_weights, axis=1)
        loss = -jnp.mean(bound)
      return loss, {"bound": jnp.mean(bound), "kl": jnp.mean(kl), "reconstruction": -jnp.mean(log_px)}

    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
      "loss": loss,
      "negative_bound": -aux["bound"],  # -ELBO (k = 1) or the negative k-sample bound, nats per image.
      "kl": aux["kl"],
      "reconstruction": aux["reconstruction"],
      "grad_norm": optax.tree.norm(grads),
      "learning_rate": self.schedule(state.step),
    }
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  # --- Inference.

  def inference_params(self, state: VAEState, *, use_ema: bool = True):
    del use_ema  # No EMA.
    return {"params": state.params}

  def encode(self, params, inputs) -> dict:
    """q(z|x) of uint8 images; the encoder sees pixel/255 (the mean of a binarised image) or the pixels."""
    images = inputs["images"]
    observations = images.astype(jnp.float32) / 255.0 if self.binarized else samples.to_float(images)
    mean, log_variance = self.model.apply(params, self._encoder_input(observations), method=VAE.encode)
    return {"mean": mean, "log_variance": log_variance}

  def decode(self, params, inputs) -> dict:
    """The decoder's mean image E[x|z] for each latent, as uint8."""
    decoded = self.model.apply(params, inputs["latents"], method=VAE.decode)
    return {"images": samples.to_uint8_on_device(self.decoder_mean(decoded))}

  def sample(self, params, inputs) -> dict:
    """Images of z ~ p(z) drawn from `fold_in(key(seed), id)`, one per sample id, as the decoder's mean."""
    root = jax.random.key(inputs["seed"])
    keys = jax.vmap(lambda sample_id: jax.random.fold_in(root, sample_id))(inputs["sample_ids"])
    latents = jax.vmap(lambda key: jax.random.normal(key, (self.latent_dim,)))(keys)
    return self.decode(params, {"latents": latents})

  def log_weights(self, params, inputs) -> dict:
    """log w = log p(x|z) + log p(z) - log q(z|x) for z = mean + sigma * noise, `[batch, k]`."""
    observations = self.observe(inputs["images"])
    noise = inputs["noise"]
    batch_size, k = noise.shape[0], noise.shape[1]
    mean, log_variance = self.model.apply(params, self._encoder_input(observations), method=VAE.encode)
    z = mean[:, None] + jnp.exp(0.5 * log_variance)[:, None] * noise
    decoded = self.model.apply(params, z.reshape(batch_size * k, -1), method=VAE.decode)
    log_px = self.log_likelihood(decoded, jnp.repeat(observations, k, axis=0)).reshape(batch_size, k)
    log_weights = (
      log_px
      + vae_objectives.standard_normal_log_density(z)
      - vae_objectives.gaussian_log_density(z, mean[:, None], log_variance[:, None])
    )
    return {"log_weights": log_weights}


Task = VAETask
