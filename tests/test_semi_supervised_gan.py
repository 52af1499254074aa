"""The semi-supervised GAN: its losses against direct computations, the labelled stream, the task end to end."""

import functools
import json
from pathlib import Path

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import configs_for_task, tiny_gan_flags
from scipy.special import logsumexp, softmax
from test_data import dataset_config

from gdjax import cli, data, parallel, run_state, tasks
from gdjax import semi_supervised_losses as losses
from gdjax.errors import ConfigError
from gdjax.models import SemiSupervisedDiscriminator
from gdjax.sweep import plan
from gdjax.tasks import semi_supervised_gan

REPO = Path(__file__).resolve().parents[1]
SEMI_SUPERVISED_CONFIGS = configs_for_task("semi_supervised_gan")


# --- Losses, against the (K+1)-class softmax written out with an explicit zero logit for "fake".


def k_plus_one_probabilities(logits):
  """softmax over [l_1, ..., l_K, 0]: the last column is P(fake | x)."""
  return softmax(np.concatenate([logits, np.zeros((len(logits), 1))], axis=1), axis=1)


def test_the_losses_are_those_of_a_k_plus_one_softmax_with_a_zero_fake_logit():
  rng = np.random.default_rng(0)
  labelled, unlabelled, generated = (rng.normal(scale=3.0, size=(n, 10)) for n in (6, 5, 7))
  labels = rng.integers(0, 10, 6)
  p_labelled, p_unlabelled, p_generated = map(k_plus_one_probabilities, (labelled, unlabelled, generated))
  # -log p(y | x, y < K+1): the class probability renormalised over the K real classes.
  supervised = -np.log(p_labelled[np.arange(6), labels] / (1.0 - p_labelled[:, -1]))
  real = -np.log(1.0 - p_unlabelled[:, -1])  # -log D(x), D(x) = 1 - P(fake | x)
  fake = -np.log(p_generated[:, -1])  # -log(1 - D(G(z)))
  np.testing.assert_allclose(losses.supervised_cross_entropy(labelled, labels), supervised, rtol=1e-5)
  np.testing.assert_allclose(losses.unlabelled_real_loss(unlabelled), real, rtol=1e-5)
  np.testing.assert_allclose(losses.generated_loss(generated), fake, rtol=1e-5)
  total, parts = losses.discriminator_loss(labelled, labels, unlabelled, generated, unsupervised_weight=0.7)
  expected = supervised.mean() + 0.7 * 0.5 * (real.mean() + fake.mean())
  np.testing.assert_allclose(total, expected, rtol=1e-5)
  np.testing.assert_allclose(parts["d_supervised_loss"], supervised.mean(), rtol=1e-5)
  # D(x) is the sigmoid of logsumexp(l).
  np.testing.assert_allclose(jax.nn.sigmoid(losses.real_score(unlabelled)), 1.0 - p_unlabelled[:, -1], rtol=1e-5)
  np.testing.assert_allclose(losses.real_score(unlabelled), logsumexp(unlabelled, axis=1), rtol=1e-6)


def test_feature_matching_against_numpy():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(9, 13)), rng.normal(loc=0.5, size=(4, 13))
  expected = np.mean((real.mean(axis=0) - fake.mean(axis=0)) ** 2)
  np.testing.assert_allclose(losses.feature_matching(real, fake), expected, rtol=1e-5)
  assert float(losses.feature_matching(real, real)) == 0.0


def test_consistency_against_numpy():
  rng = np.random.default_rng(2)
  first, second = rng.normal(scale=2.0, size=(6, 10)), rng.normal(scale=2.0, size=(6, 10))
  expected = np.sum((softmax(first, axis=1) - softmax(second, axis=1)) ** 2, axis=1)
  np.testing.assert_allclose(losses.consistency(first, second), expected, rtol=1e-5)
  # Shifting all of one view's logits by a constant leaves its class probabilities, so the term, unchanged.
  np.testing.assert_allclose(losses.consistency(first, first + 3.0), np.zeros(6), atol=1e-6)


def test_class_entropy_against_numpy():
  rng = np.random.default_rng(3)
  logits = rng.normal(scale=3.0, size=(7, 10))
  probabilities = softmax(logits, axis=1)
  expected = -np.sum(probabilities * np.log(probabilities), axis=1)
  np.testing.assert_allclose(losses.class_entropy(logits), expected, rtol=1e-5)
  # Uniform logits: log K nats; one overwhelming logit: about zero.
  np.testing.assert_allclose(losses.class_entropy(np.zeros((1, 10))), [np.log(10)], rtol=1e-6)
  assert float(losses.class_entropy(np.array([[60.0] + [0.0] * 9]))[0]) < 1e-20


def test_the_consistency_ramp_up_is_laine_and_ailas_gaussian():
  steps = np.array([0, 250, 500, 1000, 5000])
  expected = np.exp(-5.0 * (1.0 - np.minimum(steps / 1000, 1.0)) ** 2)
  np.testing.assert_allclose([losses.consistency_ramp_up(s, 1000) for s in steps], expected, rtol=1e-6)
  assert float(losses.consistency_ramp_up(0, 0)) == 1.0  # No ramp-up: the full weight from the start.


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_the_discriminator_gives_k_logits_and_its_features_and_is_deterministic_in_inference(kind):
  model = SemiSupervisedDiscriminator(kind=kind, hidden_sizes=(32, 16), width=4, num_classes=10)
  images = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1), minval=-1, maxval=1)
  variables = model.init(jax.random.key(1), images, train=False)
  logits, features = model.apply(variables, images, train=False)
  assert logits.shape == (3, 10) and features.shape == (3, 16 if kind == "mlp" else 8)
  np.testing.assert_array_equal(model.apply(variables, images, train=False)[0], logits)
  rngs = {"noise": jax.random.key(2), "dropout": jax.random.key(3)}
  noisy, _ = model.apply(variables, images, train=True, rngs=rngs)
  assert not np.allclose(noisy, logits)  # Noise (mlp) or dropout (conv) in training.


# --- The labelled stream.


@pytest.fixture(scope="module")
def builder(fake_fashion_mnist_dir, fake_tfds_data_dir):
  return data.get_builder(dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir))


def labelled_config(fake_fashion_mnist_dir, fake_tfds_data_dir, **overrides):
  fields = dict(labelled_size=30, labelled_seed=3, labelled_batch_size=10)
  return dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, **{**fields, **overrides})


def test_the_labelled_subset_has_the_requested_number_per_class_and_depends_only_on_its_seed(
  builder, fake_fashion_mnist_dir, fake_tfds_data_dir
):
  config = labelled_config(fake_fashion_mnist_dir, fake_tfds_data_dir)
  arrays = data.load_split(builder, config.train_split, whole=True)
  subset = data.pipeline.load_labelled_subset(arrays, config)
  assert np.bincount(subset["label"], minlength=10).tolist() == [3] * 10
  again = data.pipeline.load_labelled_subset(arrays, config)
  np.testing.assert_array_equal(again["image"], subset["image"])
  other = data.pipeline.load_labelled_subset(
    arrays, labelled_config(fake_fashion_mnist_dir, fake_tfds_data_dir, labelled_seed=4)
  )
  assert not np.array_equal(other["image"], subset["image"])


@pytest.mark.parametrize("config_name", SEMI_SUPERVISED_CONFIGS)
def test_the_labelled_subset_follows_the_run_seed_unless_set(config_name):
  """A sweep's seeds draw different label subsets (`--config.seed` only); an explicit labelled_seed wins."""
  config_path = REPO / "configs" / f"{config_name}.py"
  assert plan.parse_flags(config_path, {}, where="test").dataset.labelled_seed == 0
  assert plan.parse_flags(config_path, {"seed": "2"}, where="test").dataset.labelled_seed == 2
  pinned = plan.parse_flags(config_path, {"seed": "2", "dataset.labelled_seed": "7"}, where="test")
  assert (pinned.seed, pinned.dataset.labelled_seed) == (2, 7)


def test_each_step_draws_labelled_batches_from_the_subset_and_unlabelled_ones_without_labels(
  builder, fake_fashion_mnist_dir, fake_tfds_data_dir
):
  config = labelled_config(fake_fashion_mnist_dir, fake_tfds_data_dir)
  arrays = data.load_split(builder, config.train_split, whole=True)
  subset = data.pipeline.load_labelled_subset(arrays, config)
  batches = data.train_batches(builder, config, global_batch_size=16, seed=5)
  epoch = [next(batches) for _ in range(3)]  # 30 labelled examples, 10 per step: one epoch of the subset.
  assert all(set(batch) == {"image", "labelled_image", "labelled_label"} for batch in epoch)
  assert all(batch["image"].shape == (16, 28, 28, 1) and batch["labelled_label"].shape == (10,) for batch in epoch)
  seen = np.concatenate([batch["labelled_image"] for batch in epoch]).reshape(30, -1)
  expected = subset["image"].reshape(30, -1)
  assert sorted(map(bytes, seen)) == sorted(map(bytes, expected))  # Each labelled example once per epoch.
  for batch in epoch:  # Every labelled image carries its own label.
    for image, label in zip(batch["labelled_image"], batch["labelled_label"], strict=True):
      (match,) = np.flatnonzero((subset["image"] == image).all(axis=(1, 2, 3)))
      assert subset["label"][match] == label


def test_a_resumed_stream_gives_the_batches_of_an_uninterrupted_one(
  builder, fake_fashion_mnist_dir, fake_tfds_data_dir
):
  config = labelled_config(fake_fashion_mnist_dir, fake_tfds_data_dir)
  full = data.train_batches(builder, config, global_batch_size=16, seed=5)
  uninterrupted = [next(full) for _ in range(20)]  # Past several epochs of both streams.
  resumed = data.train_batches(builder, config, global_batch_size=16, seed=5, start_step=13)
  for step in range(13, 20):
    batch = next(resumed)
    for key in batch:
      np.testing.assert_array_equal(batch[key], uninterrupted[step][key])


@pytest.mark.parametrize(
  "overrides,message",
  [
    (dict(labelled_size=500), "labelled_size=500"),
    (dict(labelled_batch_size=40), "labelled_batch_size=40"),
    (dict(subset_size=50), "does not combine with subset_size"),
    (dict(in_memory=False), "in-memory pipeline"),
  ],
)
def test_a_labelled_subset_that_does_not_fit_is_refused_before_training(
  builder, fake_fashion_mnist_dir, fake_tfds_data_dir, overrides, message
):
  config = labelled_config(fake_fashion_mnist_dir, fake_tfds_data_dir, **overrides)
  with pytest.raises(ConfigError, match=message):
    data.check_training_plan(builder, config, global_batch_size=16, total_steps=10)


# --- The task.


def small_task(**overrides):
  config = semi_supervised_gan.default_config()
  config.model.generator.hidden_sizes = (16,)
  config.model.discriminator.hidden_sizes = (32, 16)
  config.noise_dim = 8
  config.batch_size = 8
  config.dataset.labelled_batch_size = 4
  config.update(overrides)
  return tasks.build_task(config)


def run_steps(task, n, mesh_devices=1):
  mesh = parallel.make_data_mesh(jax.devices()[:mesh_devices])
  run = run_state.create_or_restore(task, mesh, image_shape=(28, 28, 1), seed=0)
  state, rng = run.state, jax.random.key(0)
  initial = jax.device_get(state)
  step = parallel.jit_train_step(task.train_step, run.shapes, mesh)
  data_rng = np.random.default_rng(0)
  for _ in range(n):
    batch = {
      "image": data_rng.integers(0, 256, (8, 28, 28, 1)).astype(np.uint8),
      "labelled_image": data_rng.integers(0, 256, (4, 28, 28, 1)).astype(np.uint8),
      "labelled_label": data_rng.integers(0, 10, 4).astype(np.int32),
    }
    state, metrics = step(state, parallel.to_global_batch(batch, parallel.batch_sharding(mesh)), rng)
  return initial, jax.device_get(state), jax.device_get(metrics)


def test_one_and_four_devices_agree():
  # Without G's batch norm: the bias before it has a gradient of zero up to rounding, which Adam's
  # normalisation blows up to +-lr whatever the device count, in both runs alike.
  task = small_task()
  task.config.model.generator.use_batch_norm = False
  task = tasks.build_task(task.config)
  _, state_1, _ = run_steps(task, 3, mesh_devices=1)
  _, state_4, _ = run_steps(task, 3, mesh_devices=4)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5)
  jax.tree.map(close, state_1.generator, state_4.generator)
  jax.tree.map(close, state_1.discriminator, state_4.discriminator)


def test_the_baseline_trains_the_discriminator_alone():
  initial, state, metrics = run_steps(small_task(supervised_only=True), 2)
  jax.tree.map(np.testing.assert_array_equal, state.generator, initial.generator)  # G untouched.
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), state.discriminator, initial.discriminator)
  assert all(jax.tree.leaves(changed))
  assert set(metrics) >= {"d_supervised_loss", "labelled_accuracy"} and "g_feature_matching" not in metrics


def test_the_semi_supervised_step_trains_both_and_reports_its_terms():
  initial, state, metrics = run_steps(small_task(), 2)
  for before, after in ((initial.generator, state.generator), (initial.discriminator, state.discriminator)):
    assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, before["params"], after["params"])))
  assert {"d_supervised_loss", "d_unsupervised_loss", "g_feature_matching", "d_real", "d_fake"} <= set(metrics)
  assert all(np.isfinite(v) for v in jax.tree.leaves(metrics))


@pytest.mark.parametrize("supervised_only", [False, True])
def test_the_consistency_term_is_added_with_its_ramped_up_weight(supervised_only):
  task = small_task(supervised_only=supervised_only, consistency_weight=4.0, consistency_ramp_up_steps=2)
  _, _, metrics = run_steps(task, 2)  # The metrics of the second step, step 1: half way up the ramp.
  np.testing.assert_allclose(metrics["consistency_weight"], 4.0 * np.exp(-5.0 * 0.25), rtol=1e-5)
  assert 0.0 < metrics["d_consistency_loss"] <= 2.0  # Squared distance of two probability vectors.


@pytest.mark.parametrize("supervised_only", [False, True])
def test_the_entropy_term_is_reported_and_moves_the_discriminator(supervised_only):
  _, plain, _ = run_steps(small_task(supervised_only=supervised_only), 1)
  _, with_entropy, metrics = run_steps(small_task(supervised_only=supervised_only, entropy_weight=2.0), 1)
  assert 0.0 < metrics["d_entropy"] <= np.log(10) + 1e-5
  differs = jax.tree.map(lambda a, b: not np.allclose(a, b), plain.discriminator, with_entropy.discriminator)
  assert any(jax.tree.leaves(differs))


@pytest.mark.parametrize("supervised_only", [False, True])
def test_the_discriminator_ema_follows_its_weights_and_classifies(supervised_only):
  decay = 0.9
  task = small_task(supervised_only=supervised_only, discriminator_ema_decay=decay, ema_warmup=False)
  initial, state, _ = run_steps(task, 2)
  _, one_step, _ = run_steps(task, 1)
  # Two updates of the average from the initial weights w0 with new weights w1, w2:
  # ema = d^2 w0 + d (1 - d) w1 + (1 - d) w2.
  expected = jax.tree.map(
    lambda w0, w1, w2: decay**2 * w0 + decay * (1 - decay) * w1 + (1 - decay) * w2,
    initial.discriminator["params"],
    one_step.discriminator["params"],
    state.discriminator["params"],
  )
  close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
  jax.tree.map(close, state.discriminator["ema_params"], expected)
  # The average classifies; raw weights on request.
  jax.tree.map(close, task.inference_params(state)["discriminator"]["params"], expected)
  raw = task.inference_params(state, use_ema=False)["discriminator"]
  assert set(raw) == {"params"}
  jax.tree.map(close, raw["params"], state.discriminator["params"])


def test_without_the_discriminator_ema_the_state_keeps_no_average():
  _, state, _ = run_steps(small_task(), 1)
  assert set(state.discriminator) == {"params"}  # Checkpoints written before the option restore unchanged.


@pytest.mark.parametrize("field, value", [("entropy_weight", -0.5), ("discriminator_ema_decay", 1.0)])
def test_out_of_range_entropy_weight_or_ema_decay_is_refused(field, value):
  with pytest.raises(ConfigError, match=field):
    small_task(**{field: value})


def test_a_negative_consistency_weight_is_refused():
  with pytest.raises(ConfigError, match="consistency_weight"):
    small_task(consistency_weight=-1.0)


def test_a_config_without_labels_is_refused():
  with pytest.raises(ConfigError, match="labelled_size"):
    small_task(dataset=dict(labelled_size=0))


# --- Each config end to end on mock data: one step, evaluation, checkpoint, `gdjax predict` with D.


def config_flags(config_name, tmp_path, feature_network_dir):
  flags = {
    "dataset.local_dir": tmp_path / "no_idx",
    "dataset.data_dir": tmp_path / "tfds",
    "dataset.train_split": "train[:192]",
    "dataset.eval_split": "train[192:]",
    "dataset.labelled_size": 20,
    "dataset.labelled_batch_size": 8,
    "batch_size": 8,
    "total_steps": 1,
    "log_every_steps": 1,
    "checkpoint.every_steps": 1,
    "progress_bar": False,
    "noise_dim": 8,
    "model.generator.hidden_sizes": "(16,)",
    "model.discriminator.hidden_sizes": "(32, 16)",
  }
  if "baseline" not in config_name:
    tiny = tiny_gan_flags(feature_network_dir)
    flags.update({k: v for k, v in tiny.items() if k.startswith(("evaluation", "evals"))})
    flags["evals.quality.split"] = "train[192:]"
  return [f"--config.{k}={v}" for k, v in flags.items()]


@pytest.mark.parametrize("config_name", SEMI_SUPERVISED_CONFIGS)
def test_each_semi_supervised_config_runs_on_mock_data(config_name, tmp_path, feature_network_dir):
  assert len(SEMI_SUPERVISED_CONFIGS) == 2
  config = str(REPO / "configs" / f"{config_name}.py")
  workdir = tmp_path / "work"
  flags = config_flags(config_name, tmp_path, feature_network_dir)
  with tfds.testing.mock_data(num_examples=256):
    assert cli.main(["gdjax", "train", "--config", config, "--workdir", str(workdir), *flags]) == 0
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  evaluation = next(r for r in records if r["split"] == "eval")
  assert 0.0 <= evaluation["classification/accuracy"] <= 1.0
  assert evaluation["classification/num_examples"] > 0
  if "baseline" not in config_name:
    assert np.isfinite(evaluation["quality/fid"]) and "coverage/min_class_share" in evaluation
  images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1)).astype(np.uint8)
  np.save(tmp_path / "images.npy", images)
  out = tmp_path / "predictions.npy"
  args = ["gdjax", "predict", "--workdir", str(workdir), "--images", str(tmp_path / "images.npy"), "--out", str(out)]
  assert cli.main([*args, "--probs", str(tmp_path / "probabilities.npy")]) == 0
  labels, probabilities = np.load(out), np.load(tmp_path / "probabilities.npy")
  assert labels.shape == (5,) and probabilities.shape == (5, 10)
  np.testing.assert_array_equal(labels, probabilities.argmax(axis=1))  # The discriminator's K classes.
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
