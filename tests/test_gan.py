"""GAN task end to end: every config on mock data, n_critic, EMA, resume, sampling."""

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import configs_for_task

from gdjax import cli, config_defaults, parallel, tasks
from gdjax.models import DCGANDiscriminator
from gdjax.tasks import gan

REPO = Path(__file__).resolve().parents[1]
GAN_CONFIGS = configs_for_task("gan")


def small_gan_flags(local_dir, data_dir, feature_network_dir, total_steps=2, **extra):
  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "dataset.shuffle_buffer_size": 256,
    "batch_size": 8,
    "total_steps": total_steps,
    "log_every_steps": 1,
    "eval_every_steps": total_steps,
    "checkpoint.every_steps": 1,
    "progress_bar": False,
    "noise_dim": 8,
    "evaluation.feature_network": "tiny_cnn",
    "evaluation.feature_network_dir": feature_network_dir,
    "evaluation.num_samples": 40,
    "evaluation.batch_size": 20,
    "evaluation.kid_subsets": 2,
    "evaluation.kid_subset_size": 20,
    "evaluation.precision_recall_samples": 30,
    "evaluation.grid_size": 20,
  }
  flags.update(extra)
  return [f"--config.{k}={v}" for k, v in flags.items()]


def shrink_model_flags(config_name):
  """Overrides that make a config's G and D tiny, so a step compiles and runs fast."""
  if config_name.startswith("mlp"):
    return ["--config.model.generator.hidden_sizes=(16,)", "--config.model.discriminator.hidden_sizes=(16,)"]
  return ["--config.model.generator.width=4", "--config.model.discriminator.width=4"]


def train(config_name, workdir, *flags):
  config = str(REPO / "configs" / f"{config_name}.py")
  return cli.main(["gdjax", "train", "--config", config, "--workdir", str(workdir), *flags])


@pytest.mark.parametrize("config_name", GAN_CONFIGS)
def test_each_gan_config_runs_on_mock_data(config_name, tmp_path, feature_network_dir):
  flags = small_gan_flags(tmp_path / "no_idx", tmp_path / "tfds", feature_network_dir, total_steps=1)
  with tfds.testing.mock_data(num_examples=256):
    assert train(config_name, tmp_path / "work", *flags, *shrink_model_flags(config_name)) == 0
  records = [json.loads(line) for line in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()]
  train_record = next(r for r in records if r["split"] == "train")
  assert {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "penalty"} <= set(train_record)
  eval_record = next(r for r in records if r["split"] == "eval")
  assert {"fid", "kid", "precision", "recall", "classifier_score", "feature_network_sha256"} <= set(eval_record)
  assert eval_record["num_generated"] == 40 and eval_record["weights"] == "ema"
  if config_name.startswith("cdcgan"):
    assert 0.0 <= eval_record["intended_class_accuracy"] <= 1.0
  if config_name.startswith("wgan"):
    assert train_record["penalty"] > 0.0
  assert (tmp_path / "work" / "samples" / "step_0000001.png").is_file()


def gan_task(**overrides):
  config = config_defaults.gan_config()
  config.model.generator.width = 8
  config.model.discriminator.width = 8
  config.noise_dim = 8
  config.batch_size = 4
  config.update(overrides)
  return tasks.build_task(config)


def run_gan_steps(task, n, mesh_devices=1, seed=0):
  mesh = parallel.make_data_mesh(jax.devices()[:mesh_devices])
  init_state = functools.partial(task.init_state, image_shape=(28, 28, 1))
  rng = jax.random.key(0)
  shapes = jax.eval_shape(init_state, rng)
  state = jax.jit(init_state, out_shardings=parallel.state_shardings(shapes, mesh))(rng)
  initial = jax.device_get(state)
  step = parallel.jit_train_step(task.train_step, shapes, mesh)
  data_rng = np.random.default_rng(seed)
  for _ in range(n):
    batch = {
      "image": data_rng.uniform(-1, 1, (task.examples_per_step, 28, 28, 1)).astype(np.float32),
      "label": data_rng.integers(0, 10, task.examples_per_step).astype(np.int32),
    }
    state, metrics = step(state, parallel.to_global_batch(batch, parallel.batch_sharding(mesh)), rng)
  return initial, jax.device_get(state), jax.device_get(metrics)


def test_n_critic_discriminator_updates_per_generator_update():
  task = gan_task(n_critic=3, gan_loss="wasserstein")
  assert task.examples_per_step == 12
  _, state, _ = run_gan_steps(task, 2)
  d_count = jax.tree.leaves(state.discriminator_opt_state)[0]  # Adam's step counter.
  g_count = jax.tree.leaves(state.generator_opt_state)[0]
  assert int(d_count) == 6 and int(g_count) == 2


@pytest.mark.parametrize("warmup,first_decay", [(False, 0.9), (True, 0.1)])  # With warm-up: min(0.9, 1 / 10).
def test_ema_follows_the_generator(warmup, first_decay):
  task = gan_task(ema_decay=0.9, ema_warmup=warmup)
  initial, state, _ = run_gan_steps(task, 1)
  expected = jax.tree.map(lambda e, g: first_decay * e + (1 - first_decay) * g, initial.ema_generator, state.generator)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), state.ema_generator, expected)


def test_ema_warmup_decay_schedule():
  steps = jnp.arange(0, 3000, 7)
  expected = np.minimum(0.999, (1.0 + np.arange(0, 3000, 7)) / (10.0 + np.arange(0, 3000, 7)))
  np.testing.assert_allclose(gan.ema_decay(0.999, steps, warmup=True), expected, rtol=1e-6)
  np.testing.assert_allclose(gan.ema_decay(0.999, steps[:3], warmup=False), [0.999] * 3)


def test_one_and_four_devices_agree_for_a_gan():
  task = gan_task(batch_size=8)
  _, state_1, _ = run_gan_steps(task, 3, mesh_devices=1)
  _, state_4, _ = run_gan_steps(task, 3, mesh_devices=4)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5)
  jax.tree.map(close, state_1.generator, state_4.generator)
  jax.tree.map(close, state_1.discriminator, state_4.discriminator)


def test_spectral_norm_scales_the_top_singular_value_to_one():
  model = DCGANDiscriminator(width=4, spectral_norm=True)
  x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
  variables = model.init(jax.random.key(1), x, train=False)
  for _ in range(30):  # Power iteration converges over training steps.
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
  # The second conv's kernel, as the matrix spectral norm sees it: [4*4*4, 8].
  kernel = np.asarray(variables["params"]["Conv_1"]["kernel"]).reshape(-1, 8)
  sigma = float(variables["batch_stats"]["SpectralNorm_1"]["Conv_1/kernel/sigma"])
  np.testing.assert_allclose(sigma, np.linalg.svd(kernel, compute_uv=False)[0], rtol=1e-3)
  # And the layer's output is what the normalised kernel gives.
  normalised = kernel / sigma
  assert np.linalg.svd(normalised, compute_uv=False)[0] == pytest.approx(1.0, rel=1e-3)


@pytest.fixture(scope="module")
def trained_gan(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir):
  workdir = tmp_path_factory.mktemp("cdcgan")
  flags = small_gan_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir, total_steps=4)
  assert train("cdcgan_fashion_mnist", workdir, *flags, *shrink_model_flags("cdcgan")) == 0
  return workdir, flags


def test_restoring_gives_the_same_next_steps_as_not_stopping(
  trained_gan, tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir
):
  full_workdir, _ = trained_gan
  shrink = shrink_model_flags("cdcgan")
  short = small_gan_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir, total_steps=2)
  assert train("cdcgan_fashion_mnist", tmp_path, *short, *shrink) == 0
  rest = small_gan_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir, total_steps=4)
  assert train("cdcgan_fashion_mnist", tmp_path, *rest, *shrink) == 0

  def train_metrics(workdir):
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if r["split"] == "train"}

  full, resumed = train_metrics(full_workdir), train_metrics(tmp_path)
  for step in (3, 4):
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
      assert resumed[step][key] == full[step][key], (step, key)


def test_sample_writes_uint8_images_of_the_asked_classes(trained_gan, tmp_path):
  workdir, _ = trained_gan
  out = tmp_path / "s.npy"
  args = ["gdjax", "sample", "--workdir", str(workdir), "--num", "7", "--out", str(out), "--labels", "3,5"]
  assert cli.main([*args, "--grid", str(tmp_path / "grid.png")]) == 0
  images = np.load(out)
  assert images.shape == (7, 28, 28, 1) and images.dtype == np.uint8
  assert (tmp_path / "grid.png").is_file()
  assert cli.main(["gdjax", "sample", "--workdir", str(workdir), "--out", str(out), "--labels", "12"]) == 2


def test_eval_writes_the_protocol(trained_gan, capsys):
  workdir, _ = trained_gan
  assert cli.main(["gdjax", "eval", "--workdir", str(workdir)]) == 0
  result = json.loads((workdir / "eval_test.json").read_text())
  assert result["reference_split"] == "test" and result["num_real"] == 96
  assert len(result["feature_network_sha256"]) == 16
