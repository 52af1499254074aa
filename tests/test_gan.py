"""GAN task end to end: every config on mock data, n_critic, EMA, resume, sampling."""

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import configs_for_task, tiny_gan_flags

from gdjax import cli, parallel, run_state, tasks
from gdjax.models import DCGANDiscriminator
from gdjax.tasks import gan

REPO = Path(__file__).resolve().parents[1]
GAN_CONFIGS = configs_for_task("gan")


def small_gan_flags(local_dir, data_dir, feature_network_dir, total_steps=2, **extra):
  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "batch_size": 8,
    "total_steps": total_steps,
    "log_every_steps": 1,
    "eval_every_steps": total_steps,
    "checkpoint.every_steps": 1,
    "progress_bar": False,
    **tiny_gan_flags(feature_network_dir),
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
  assert {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"} <= set(train_record)
  eval_record = next(r for r in records if r["split"] == "eval")
  quality = {"fid", "kid", "precision", "recall", "classifier_score", "feature_network_sha256", "weights"}
  assert {f"quality/{name}" for name in quality} <= set(eval_record)
  assert {"coverage/min_class_share", "coverage/class_entropy", "coverage/class_share_9"} <= set(eval_record)
  assert eval_record["quality/num_generated"] == 40 and eval_record["quality/weights"] == "ema"
  assert eval_record["quality/reference_split"] == "train[192:]"  # Validation, never test, during training.
  if config_name.startswith("cdcgan"):
    assert 0.0 <= eval_record["coverage/intended_class_accuracy"] <= 1.0
  if config_name.startswith("wgan"):
    assert train_record["wgan_gp"] > 0.0
  assert (tmp_path / "work" / "samples" / "step_0000001.png").is_file()


def gan_task(**overrides):
  config = gan.default_config()
  config.model.generator.width = 8
  config.model.discriminator.width = 8
  config.noise_dim = 8
  config.batch_size = 4
  config.update(overrides)
  return tasks.build_task(config)


def run_gan_steps(task, n, mesh_devices=1, seed=0):
  mesh = parallel.make_data_mesh(jax.devices()[:mesh_devices])
  run = run_state.create_or_restore(task, mesh, image_shape=(28, 28, 1), seed=0)
  state, rng = run.state, jax.random.key(0)
  initial = jax.device_get(state)
  step = parallel.jit_train_step(task.train_step, run.shapes, mesh)
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
  assert result["quality/reference_split"] == "test" and result["quality/num_real"] == 96
  assert len(result["quality/feature_network_sha256"]) == 16
  assert result["coverage/num_generated"] == 40 and result["split"] == "test"


def test_gdjax_sample_draws_the_images_the_evaluators_score(trained_gan, tmp_path):
  """One sampling path: `gdjax sample --seed 0` gives the samples whose FID `gdjax eval` reports."""
  from gdjax import data
  from gdjax.evaluators import EvalContext, sample_quality

  workdir, _ = trained_gan
  assert cli.main(["gdjax", "eval", "--workdir", str(workdir), "--evals", "quality"]) == 0
  reported = json.loads((workdir / "eval_test.json").read_text())
  config = json.loads((workdir / "config.json").read_text())
  options = {k: v for k, v in config["evals"]["quality"].items() if k not in ("type", "every_steps", "use_ema")}
  num = options["num_samples"]
  assert (
    cli.main(["gdjax", "sample", "--workdir", str(workdir), "--num", str(num), "--out", str(tmp_path / "s.npy")]) == 0
  )
  builder = data.get_builder(ml_collections.ConfigDict(config["dataset"]))
  evaluator = sample_quality.Evaluator(
    {}, EvalContext(parallel.make_data_mesh(), builder, None), **{**options, "split": "test"}
  )
  rescored = evaluator.score_images(np.load(tmp_path / "s.npy"))
  assert rescored["fid"] == reported["quality/fid"] and rescored["kid"] == reported["quality/kid"]
