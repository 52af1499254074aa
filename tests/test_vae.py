"""The VAE task end to end, and the likelihood evaluator against a model whose log p(x) has a closed form."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import configs_for_task, tiny_gan_flags
from test_data import dataset_config

from gdjax import cli, data, parallel
from gdjax.errors import ConfigError
from gdjax.evaluators import EvalContext, likelihood
from gdjax.sweep import plan
from gdjax.tasks import InferenceFunction, TensorSpec, build_task, vae

REPO = Path(__file__).resolve().parents[1]
VAE_CONFIGS = configs_for_task("vae")


class LinearGaussianModel:
  """x = W z + b + sigma * noise on the 784 pixels (pixel / 255), z ~ N(0, I_2): p(x) = N(b, W W^T + sigma^2 I).

  Its q(z|x) is the exact posterior shifted and widened on purpose, so the
  ELBO falls short of log p(x) by KL(q || posterior) and the importance
  weights are not constant.
  """

  def __init__(self, seed=0, sigma=0.3, shift=0.3, widen=2.0):
    rng = np.random.default_rng(seed)
    self.W = rng.normal(scale=0.05, size=(784, 2))
    self.b = rng.uniform(0.0, 0.5, size=784)
    self.sigma, self.shift, self.widen = sigma, shift, widen
    self.posterior_covariance = np.linalg.inv(np.eye(2) + self.W.T @ self.W / sigma**2)

  def posterior_mean(self, x):
    return (x - self.b) @ self.W @ self.posterior_covariance / self.sigma**2

  def q(self, x):
    mean = self.posterior_mean(x) + self.shift
    variance = np.diag(self.posterior_covariance) * self.widen
    return mean, variance

  def exact_log_likelihood(self, x):
    covariance = self.W @ self.W.T + self.sigma**2 * np.eye(784)
    _, log_det = np.linalg.slogdet(covariance)
    centered = x - self.b
    quadratic = np.einsum("nd,nd->n", centered, np.linalg.solve(covariance, centered.T).T)
    return -0.5 * (784 * np.log(2 * np.pi) + log_det + quadratic)

  def kl_q_to_posterior(self, x):
    mean, variance = self.q(x)
    inverse = np.linalg.inv(self.posterior_covariance)
    difference = self.posterior_mean(x) - mean
    _, log_det_posterior = np.linalg.slogdet(self.posterior_covariance)
    return 0.5 * (
      np.trace(inverse @ np.diag(variance))
      + np.einsum("nd,de,ne->n", difference, inverse, difference)
      - 2
      + log_det_posterior
      - np.sum(np.log(variance))
    )

  def log_weights_function(self):
    W, b = jnp.asarray(self.W, jnp.float32), jnp.asarray(self.b, jnp.float32)
    sigma, shift, widen = self.sigma, self.shift, self.widen
    precision_times = jnp.asarray(self.W @ self.posterior_covariance / self.sigma**2, jnp.float32)
    q_variance = jnp.asarray(np.diag(self.posterior_covariance) * widen, jnp.float32)

    def fn(params, inputs):
      del params
      x = inputs["images"].reshape(inputs["images"].shape[0], -1).astype(jnp.float32) / 255.0
      mean = (x - b[None]) @ precision_times + shift
      z = mean[:, None] + jnp.sqrt(q_variance)[None, None] * inputs["noise"]
      residual = x[:, None] - (z @ W.T + b[None, None])
      log_px = -0.5 * jnp.sum(jnp.square(residual) / sigma**2 + np.log(2 * np.pi * sigma**2), axis=-1)
      log_pz = -0.5 * jnp.sum(jnp.square(z) + np.log(2 * np.pi), axis=-1)
      log_qz = -0.5 * jnp.sum(
        jnp.square(z - mean[:, None]) / q_variance[None, None] + jnp.log(2 * np.pi * q_variance)[None, None], axis=-1
      )
      return {"log_weights": log_px + log_pz - log_qz}

    return InferenceFunction(
      fn=fn,
      inputs={"images": TensorSpec("uint8", (-1, 28, 28, 1)), "noise": TensorSpec("float32", (-1, -1, 2))},
      outputs={"log_weights": TensorSpec("float32", (-1, -1))},
    )


def test_importance_weighted_estimate_reaches_the_exact_log_likelihood(fake_fashion_mnist_dir, fake_tfds_data_dir):
  model = LinearGaussianModel()
  builder = data.get_builder(dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir))
  context = EvalContext(parallel.make_data_mesh(), builder, None)
  inference = {"log_weights": model.log_weights_function()}
  x = data.load_split(builder, "test", whole=True)["image"].reshape(-1, 784).astype(np.float64) / 255.0
  exact = model.exact_log_likelihood(x)
  elbo = exact - model.kl_q_to_posterior(x)
  assert np.mean(exact - elbo) > 1.0  # The encoder is off by more than a nat: k matters.

  results = {}
  for k in (1, 100, 5000):
    evaluator = likelihood.Evaluator(
      inference, context, split="test", num_importance_samples=k, chunk_size=min(k, 500), batch_size=32, binarize=False
    )
    results[k] = evaluator.run(None)
  # The ELBO estimate (the mean log weight over 5,000 draws per image) is the closed-form ELBO.
  assert results[5000]["elbo"] == pytest.approx(np.mean(elbo), abs=0.02)
  # The bound tightens with k and reaches log p(x) at k = 5,000.
  assert results[1]["log_likelihood"] < results[100]["log_likelihood"] < results[5000]["log_likelihood"]
  assert results[5000]["log_likelihood"] == pytest.approx(np.mean(exact), abs=0.02)
  assert results[5000]["num_examples"] == 96 and results[5000]["num_importance_samples"] == 5000


def test_the_estimate_does_not_depend_on_the_batch_or_the_chunk(fake_fashion_mnist_dir, fake_tfds_data_dir):
  model = LinearGaussianModel()
  builder = data.get_builder(dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir))
  context = EvalContext(parallel.make_data_mesh(), builder, None)
  inference = {"log_weights": model.log_weights_function()}
  first = likelihood.Evaluator(
    inference, context, split="test", num_importance_samples=200, chunk_size=200, batch_size=96
  )
  second = likelihood.Evaluator(
    inference, context, split="test", num_importance_samples=200, chunk_size=200, batch_size=8
  )
  assert first.run(None)["log_likelihood"] == pytest.approx(second.run(None)["log_likelihood"], rel=1e-6)


def vae_flags(local_dir, data_dir, feature_network_dir, total_steps=2, **extra):
  flags = {k: v for k, v in tiny_gan_flags(feature_network_dir).items() if k != "noise_dim"}  # Small data and evals.
  flags.update(
    {
      "dataset.local_dir": local_dir,
      "dataset.data_dir": data_dir,
      "batch_size": 16,
      "total_steps": total_steps,
      "log_every_steps": 1,
      "eval_every_steps": total_steps,
      "checkpoint.every_steps": total_steps,
      "progress_bar": False,
      "model.hidden_sizes": "(16, 8)",
      "evals.likelihood.num_importance_samples": 4,
      "evals.likelihood.chunk_size": 2,
      "evals.likelihood_k5000.num_importance_samples": 10,
      "evals.likelihood_k5000.chunk_size": 5,
      "evals.pictures.num_reconstructions": 10,
      "evals.pictures.num_interpolations": 2,
      "evals.pictures.num_scatter": 30,
    }
  )
  flags.update(extra)
  return [f"--config.{k}={v}" for k, v in flags.items()]


def load_config(config_name):
  return plan.load_config(REPO / "configs" / f"{config_name}.py")


def train(config_name, workdir, *flags):
  config = str(REPO / "configs" / f"{config_name}.py")
  return cli.main(["gdjax", "train", "--config", config, "--workdir", str(workdir), *flags])


@pytest.mark.parametrize("config_name", VAE_CONFIGS)
def test_each_vae_config_builds_its_task(config_name):
  config = load_config(config_name)
  task = build_task(config)
  assert set(task.inference_functions) == {"encode", "decode", "sample", "log_weights"}
  assert config.evals.likelihood_k5000.every_steps < 0 and config.evals.likelihood_k5000.num_importance_samples == 5000


# The default config trains end to end in the `trained_vae` fixture; these differ from it in code, not numbers.
@pytest.mark.parametrize("config_name", ["vae_conv_fashion_mnist", "vae_logistic_fashion_mnist"])
def test_vae_configs_with_other_networks_run_on_mock_data(config_name, tmp_path, feature_network_dir):
  flags = vae_flags(tmp_path / "no_idx", tmp_path / "tfds", feature_network_dir, total_steps=1)
  flags.append("--config.model.hidden_sizes=(4, 8)" if "conv" in config_name else "--config.model.hidden_sizes=(16, 8)")
  # The sample evaluators run on the default config in `trained_vae`; here the step, the bound and a grid.
  flags += [f"--config.evals.{name}.every_steps=-1" for name in ("quality", "coverage", "pictures")]
  with tfds.testing.mock_data(num_examples=256):
    assert train(config_name, tmp_path / "work", *flags) == 0
  records = [json.loads(line) for line in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()]
  train_record = next(r for r in records if r["split"] == "train")
  assert np.isfinite(train_record["loss"]) and train_record["kl"] >= 0
  evaluation = next(r for r in records if r["split"] == "eval")
  assert np.isfinite(evaluation["likelihood/negative_log_likelihood"]) and "quality/fid" not in evaluation
  assert (tmp_path / "work" / "samples" / "step_0000001.png").is_file()


@pytest.fixture(scope="module")
def trained_vae(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir):
  workdir = tmp_path_factory.mktemp("vae")
  flags = vae_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir, total_steps=3)
  assert train("vae_fashion_mnist", workdir, *flags, "--config.model.latent_dim=2") == 0
  return workdir


def test_training_evaluates_the_bound_and_the_samples_and_draws_the_pictures(trained_vae):
  records = [json.loads(line) for line in (trained_vae / "metrics.jsonl").read_text().splitlines()]
  train_record = next(r for r in records if r["split"] == "train")
  assert np.isfinite(train_record["loss"]) and train_record["kl"] >= 0
  evaluation = next(r for r in records if r["split"] == "eval")
  assert evaluation["likelihood/num_importance_samples"] == 4 and "quality/fid" in evaluation
  assert 0 <= evaluation["coverage/min_class_share"] <= 0.1
  assert "likelihood_k5000/negative_log_likelihood" not in evaluation  # Only in `gdjax eval`.
  pictures = {p.name for p in (trained_vae / "samples").iterdir()}
  assert {"step_0000003.png", "reconstructions_step_0000003.png", "interpolations_step_0000003.png"} <= pictures
  assert "latents_step_0000003.png" in pictures  # A 2-D latent space gets a scatter plot.


def test_eval_reports_the_k_sample_likelihood_with_its_protocol(trained_vae, tmp_path):
  out = tmp_path / "likelihood.json"
  assert (
    cli.main(["gdjax", "eval", "--workdir", str(trained_vae), "--evals", "likelihood_k5000", "--out", str(out)]) == 0
  )
  assert not (trained_vae / "eval_test.json").exists()  # --out replaces the workdir's file.
  result = json.loads(out.read_text())
  assert result["likelihood_k5000/num_importance_samples"] == 10 and result["likelihood_k5000/num_examples"] == 96
  assert result["likelihood_k5000/seed"] == 0 and "binarised" in result["likelihood_k5000/protocol"]
  assert (
    result["likelihood_k5000/log_likelihood"] >= result["likelihood_k5000/elbo"]
  )  # Jensen, per image and on average.
  assert result["likelihood_k5000/negative_log_likelihood"] == -result["likelihood_k5000/log_likelihood"]


def test_eval_draws_the_pictures_of_the_evaluated_split_only_when_asked(trained_vae, tmp_path):
  samples_dir = trained_vae / "samples"
  before = {p.name: p.read_bytes() for p in samples_dir.iterdir()}
  command = ["gdjax", "eval", "--workdir", str(trained_vae), "--evals", "pictures,grid", "--split", "test[:50]"]
  assert cli.main([*command, "--out", str(tmp_path / "a.json")]) == 0
  assert {p.name for p in samples_dir.iterdir()} == set(before)  # Without --pictures: no files.
  assert cli.main([*command, "--pictures", "--out", str(tmp_path / "b.json")]) == 0
  after = {p.name: p.read_bytes() for p in samples_dir.iterdir()}
  drawn = {f"{kind}step_0000003_test__50_.png" for kind in ("", "reconstructions_", "interpolations_", "latents_")}
  assert set(after) - set(before) == drawn
  assert all(after[name] == data for name, data in before.items())  # Training's pictures are left as they were.


def test_gdjax_sample_draws_decoder_means(trained_vae, tmp_path):
  out = tmp_path / "s.npy"
  assert (
    cli.main(["gdjax", "sample", "--workdir", str(trained_vae), "--num", "5", "--out", str(out), "--seed", "-3"]) == 0
  )
  images = np.load(out)
  assert images.shape == (5, 28, 28, 1) and images.dtype == np.uint8


def test_log_weights_are_the_model_s_own_terms():
  """log w from the inference function equals the decoder's Bernoulli log-likelihood plus the two Gaussian terms."""
  config = vae.default_config()
  config.model.hidden_sizes = (16, 8)
  config.model.latent_dim = 3
  task = build_task(config)
  state = task.init_state(jax.random.key(0), (28, 28, 1))
  params = task.inference_params(state)
  rng = np.random.default_rng(0)
  images = (rng.integers(0, 2, (2, 28, 28, 1)) * 255).astype(np.uint8)
  noise = rng.normal(size=(2, 4, 3)).astype(np.float32)
  log_w = np.asarray(jax.jit(task.log_weights)(params, {"images": images, "noise": noise})["log_weights"], np.float64)
  mean, log_variance = (
    np.asarray(v, np.float64)
    for v in jax.jit(task.model.apply, static_argnames="method")(
      params, jnp.asarray(images / 255.0 * 2 - 1, jnp.float32), method=task.model.encode
    )
  )
  z = mean[:, None] + np.exp(0.5 * log_variance)[:, None] * noise
  logits = np.asarray(
    task.model.apply(params, jnp.asarray(z.reshape(8, 3), jnp.float32), method=task.model.decode)["logits"], np.float64
  )
  x = np.repeat(images / 255.0, 4, axis=0)
  p = 1 / (1 + np.exp(-logits))
  log_px = (x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(2, 4, -1).sum(-1)
  log_pz = -0.5 * np.sum(z**2 + np.log(2 * np.pi), -1)
  log_qz = -0.5 * np.sum(
    (z - mean[:, None]) ** 2 / np.exp(log_variance)[:, None] + log_variance[:, None] + np.log(2 * np.pi), -1
  )
  np.testing.assert_allclose(log_w, log_px + log_pz - log_qz, rtol=1e-4)


def test_a_likelihood_evaluation_that_does_not_fit_the_decoder_is_refused():
  config = vae.default_config()
  config.model.likelihood = "logistic"
  with pytest.raises(ConfigError, match=r"evals.likelihood.binarize must be False for a logistic decoder"):
    build_task(config)
