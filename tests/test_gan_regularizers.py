"""The regulariser registry (names, options, refusals), and DiffAugment, bCR and LeCam against NumPy.

(WGAN-GP's and R1's gradients: tests/test_gan_step_gradients.py. DiffAugment's ops: tests/test_diff_augment.py.)
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import tiny_gan_flags

from gdjax import cli, diff_augment, gan_regularizers, parallel, run_state, tasks
from gdjax.errors import ConfigError
from gdjax.tasks import gan

REPO = Path(__file__).resolve().parents[1]


def config_with(regularizers, **options):
  config = gan.default_config()
  config.regularizers = regularizers
  for name, values in options.items():
    config.regularizer_options[name].update(values)
  return config


def test_unknown_name_is_refused_with_the_known_ones():
  with pytest.raises(
    ConfigError, match=r"Unknown GAN regulariser\(s\) \['wgangp'\].*\['bcr', 'diffaugment', 'lecam', 'r1', 'wgan_gp'\]"
  ):
    tasks.build_task(config_with("wgangp"))


def test_a_name_given_twice_is_refused():
  with pytest.raises(ConfigError, match="names a regulariser twice"):
    tasks.build_task(config_with("r1, r1"))


def test_options_come_from_the_config_and_defaults_from_the_dataclass():
  task = tasks.build_task(config_with("r1,wgan_gp", r1={"weight": 0.5}))
  assert list(task.regularizers) == ["r1", "wgan_gp"]
  assert task.regularizers["r1"].weight == 0.5 and task.regularizers["wgan_gp"].weight == 10.0
  assert gan_regularizers.default_options().to_dict() == {
    "r1": {"weight": 5.0},
    "wgan_gp": {"weight": 10.0},
    "diffaugment": {"policy": "color,translation,cutout", "translation_ratio": 0.125, "cutout_ratio": 0.5},
    "bcr": {"real_weight": 10.0, "fake_weight": 10.0, "flip": True, "max_shift_fraction": 0.125},
    "lecam": {"weight": 0.3, "decay": 0.99, "one_sided": True},
  }


def test_an_unknown_option_is_refused():
  config = gan.default_config()
  config.regularizers = "r1"
  config.regularizer_options = ml_collections.ConfigDict({"r1": {"weight": 1.0, "gamma": 2.0}})
  with pytest.raises(ConfigError, match=r"regularizer_options.r1 has unknown option\(s\) \['gamma'\]"):
    tasks.build_task(config)


def test_no_regulariser_means_an_empty_state_and_no_extra_metrics():
  task = tasks.build_task(gan.default_config())
  assert task.regularizers == {}


# --- The three data-efficiency regularisers: DiffAugment, bCR, LeCam.


def test_a_diffaugment_policy_with_an_unknown_op_is_refused_when_the_task_is_built():
  config = config_with("diffaugment", diffaugment={"policy": "color,zoom"})
  with pytest.raises(
    ConfigError, match=r"Unknown DiffAugment op\(s\) \['zoom'\].*\['color', 'translation', 'cutout'\]"
  ):
    tasks.build_task(config)


def test_diffaugment_augments_with_the_policy_and_the_ratios():
  regularizer = gan_regularizers.DiffAugment(policy="translation,cutout", translation_ratio=0.25, cutout_ratio=0.25)
  images = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 2)).astype(np.float32)
  key = jax.random.key(0)
  expected = diff_augment.random_translation(jax.random.fold_in(key, 0), images, 0.25)
  expected = diff_augment.random_cutout(jax.random.fold_in(key, 1), expected, 0.25)
  np.testing.assert_array_equal(regularizer.augment(key, images), expected)


B, H, W = 6, 8, 8  # A tiny batch of tiny images for the linear discriminator.


def linear_discriminator(seed=0):
  """`D(x, y) = <x, w> + c[y]`: a class offset, so scoring an image with the wrong label shows."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(H * W,)).astype(np.float32)
  c = rng.normal(size=(10,)).astype(np.float32)
  return w, c


def linear_view(w, c, real, fake, real_labels, fake_labels, axis_name=None):
  def score(images, labels):
    return images.reshape(len(images), -1) @ w + jnp.asarray(c)[labels]

  return gan_regularizers.DiscriminatorView(
    score=score,
    real=real,
    fake=fake,
    real_labels=real_labels,
    fake_labels=fake_labels,
    real_scores=score(real, real_labels),
    fake_scores=score(fake, fake_labels),
    axis_name=axis_name,
  )


def tiny_batch(seed=1):
  rng = np.random.default_rng(seed)
  real, fake = (rng.uniform(-1, 1, (B, H, W, 1)).astype(np.float32) for _ in range(2))
  real_labels, fake_labels = (rng.integers(0, 10, B).astype(np.int32) for _ in range(2))
  return real, fake, real_labels, fake_labels


def numpy_flip_and_translate(key, images, max_shift):
  """bCR's T in NumPy, from the draws `augmentations` makes with these keys: flip w.p. 1/2, then shift, 0 shifted in."""
  flip_rng, shift_rng = jax.random.split(key)
  flip = np.asarray(jax.random.bernoulli(flip_rng, 0.5, (len(images), 1, 1, 1)))
  offsets = np.asarray(jax.random.randint(shift_rng, (len(images), 2), 0, 2 * max_shift + 1))
  flipped = np.where(flip, images[:, :, ::-1], images)
  padded = np.pad(flipped, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
  return np.stack([p[dy : dy + H, dx : dx + W] for p, (dy, dx) in zip(padded, offsets)])


def test_bcr_is_the_papers_formula_on_a_linear_discriminator():
  w, c = linear_discriminator()
  real, fake, real_labels, fake_labels = tiny_batch()
  regularizer = gan_regularizers.BalancedConsistency(real_weight=10.0, fake_weight=3.0)
  key = jax.random.key(4)

  def loss(w):
    view = linear_view(w, c, real, fake, real_labels, fake_labels)
    total, state, metrics = regularizer.discriminator_loss(view, {}, key)
    return total, (state, metrics)

  (total, (state, metrics)), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(w)

  real_key, fake_key = jax.random.split(key)
  # One shift in each direction: int(8 / 8).
  real_diff = (real - numpy_flip_and_translate(real_key, real, 1)).reshape(B, -1).astype(np.float64)
  fake_diff = (fake - numpy_flip_and_translate(fake_key, fake, 1)).reshape(B, -1).astype(np.float64)
  assert np.all(np.abs(real_diff).sum(axis=1) > 0)  # T moved every image: the test is not vacuous.
  real_term, fake_term = np.mean((real_diff @ w) ** 2), np.mean((fake_diff @ w) ** 2)
  np.testing.assert_allclose(metrics["bcr_real"], real_term, rtol=1e-5)
  np.testing.assert_allclose(metrics["bcr_fake"], fake_term, rtol=1e-5)
  np.testing.assert_allclose(total, 10.0 * real_term + 3.0 * fake_term, rtol=1e-5)
  # d/dw of lambda * mean(<x - T(x), w>^2) = lambda * 2 * mean(<x - T(x), w> (x - T(x))).
  expected_grad = 10.0 * 2 * np.mean((real_diff @ w)[:, None] * real_diff, axis=0)
  expected_grad += 3.0 * 2 * np.mean((fake_diff @ w)[:, None] * fake_diff, axis=0)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-4)
  assert state == {}


def test_bcr_without_a_transformation_is_zero():
  w, c = linear_discriminator()
  view = linear_view(w, c, *tiny_batch())
  regularizer = gan_regularizers.BalancedConsistency(flip=False, max_shift_fraction=0.0)
  total, _, _ = regularizer.discriminator_loss(view, {}, jax.random.key(0))
  assert float(total) == 0.0


def numpy_lecam(real, fake, real_anchor, fake_anchor, one_sided):
  real_excess, fake_shortfall = real - fake_anchor, real_anchor - fake
  if one_sided:
    real_excess, fake_shortfall = np.maximum(real_excess, 0), np.maximum(fake_shortfall, 0)
  return np.mean(real_excess**2) + np.mean(fake_shortfall**2)


def numpy_debiased_ema(means, decay):
  """alpha_t = b_t / (1 - decay^t), b_t = decay b_{t-1} + (1 - decay) m_t, b_0 = 0: TensorFlow's zero_debias."""
  biased, anchors = 0.0, []
  for t, mean in enumerate(means, start=1):
    biased = decay * biased + (1 - decay) * mean
    anchors.append(biased / (1 - decay**t))
  return np.array(anchors)


@pytest.mark.parametrize("one_sided", [True, False])
def test_lecam_penalty_uses_the_updated_anchors(one_sided):
  rng = np.random.default_rng(2)
  real, fake = rng.normal(0.5, 1.0, 16).astype(np.float32), rng.normal(-0.5, 1.0, 16).astype(np.float32)
  regularizer = gan_regularizers.LeCam(weight=0.3, decay=0.9, one_sided=one_sided)
  state = {"real_anchor": jnp.float32(0.7), "fake_anchor": jnp.float32(-0.2), "updates": jnp.int32(3)}
  view = gan_regularizers.DiscriminatorView(
    score=None, real=None, fake=None, real_labels=None, fake_labels=None, real_scores=real, fake_scores=fake
  )
  total, new_state, metrics = regularizer.discriminator_loss(view, state, jax.random.key(0))
  # Update 4 of a debiased EMA with decay 0.9: step size 0.1 / (1 - 0.9^4).
  step = 0.1 / (1 - 0.9**4)
  real_anchor = 0.7 + (np.mean(real.astype(np.float64)) - 0.7) * step
  fake_anchor = -0.2 + (np.mean(fake.astype(np.float64)) + 0.2) * step
  np.testing.assert_allclose(
    [new_state["real_anchor"], new_state["fake_anchor"]], [real_anchor, fake_anchor], rtol=1e-5
  )
  assert int(new_state["updates"]) == 4
  penalty = numpy_lecam(real.astype(np.float64), fake.astype(np.float64), real_anchor, fake_anchor, one_sided)
  np.testing.assert_allclose(metrics["lecam"], penalty, rtol=1e-5)
  np.testing.assert_allclose(total, 0.3 * penalty, rtol=1e-5)
  if one_sided:
    assert 0 < penalty < numpy_lecam(real, fake, real_anchor, fake_anchor, one_sided=False)


def test_lecam_anchors_carry_no_gradient():
  rng = np.random.default_rng(3)
  real, fake = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
  regularizer = gan_regularizers.LeCam(weight=2.0, one_sided=False)
  state = regularizer.init_state()

  def loss(real, fake):
    view = gan_regularizers.DiscriminatorView(None, None, None, None, None, real_scores=real, fake_scores=fake)
    return regularizer.discriminator_loss(view, state, jax.random.key(0))[0]

  real_grad, fake_grad = jax.grad(loss, argnums=(0, 1))(real, fake)
  # First update: the anchors are the batch means, held constant: d/dr_k 2 * mean((r - a_F)^2) = 4 (r_k - a_F) / 8.
  np.testing.assert_allclose(real_grad, 4 * (real - fake.mean()) / 8, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(fake_grad, 4 * (fake - real.mean()) / 8, rtol=1e-5, atol=1e-6)


def test_lecam_anchors_are_debiased_moving_averages_of_the_mean_scores():
  regularizer = gan_regularizers.LeCam(decay=0.99)
  rng = np.random.default_rng(4)
  scores = [(rng.normal(1.0, 2.0, 8).astype(np.float32), rng.normal(-1.0, 2.0, 8).astype(np.float32)) for _ in range(6)]
  state = regularizer.init_state()
  got = []

  @jax.jit
  def update(state, real, fake):
    view = gan_regularizers.DiscriminatorView(None, None, None, None, None, real_scores=real, fake_scores=fake)
    return regularizer.discriminator_loss(view, state, jax.random.key(0))[1]

  for real, fake in scores:
    state = update(state, real, fake)
    got.append((float(state["real_anchor"]), float(state["fake_anchor"])))
  real_means = [np.mean(r.astype(np.float64)) for r, _ in scores]
  fake_means = [np.mean(f.astype(np.float64)) for _, f in scores]
  np.testing.assert_allclose(np.array(got)[:, 0], numpy_debiased_ema(real_means, 0.99), rtol=1e-5)
  np.testing.assert_allclose(np.array(got)[:, 1], numpy_debiased_ema(fake_means, 0.99), rtol=1e-5)
  np.testing.assert_allclose(got[0], (real_means[0], fake_means[0]), rtol=1e-6)  # The first anchors: the first means.
  assert int(state["updates"]) == 6


def test_lecam_decay_outside_0_1_is_refused():
  with pytest.raises(ConfigError, match=r"lecam.decay must be in \[0, 1\)"):
    tasks.build_task(config_with("lecam", lecam={"decay": 1.0}))


def test_under_pmap_lecam_anchors_are_the_means_over_all_devices():
  """Each of 4 devices scores its own shard; every device ends with the anchors of the whole batch."""
  devices = jax.devices()[:4]
  regularizer = gan_regularizers.LeCam(decay=0.5)
  rng = np.random.default_rng(5)
  real, fake = rng.normal(1, 1, (2, 4, 3)).astype(np.float32), rng.normal(-1, 1, (2, 4, 3)).astype(np.float32)

  def two_updates(real, fake):
    state, penalties = regularizer.init_state(), []
    for t in range(2):
      view = gan_regularizers.DiscriminatorView(None, None, None, None, None, real[t], fake[t], axis_name="batch")
      _, state, metrics = regularizer.discriminator_loss(view, state, jax.random.key(0))
      penalties.append(metrics["lecam"])
    return state, jnp.stack(penalties)

  pmapped = jax.pmap(two_updates, axis_name="batch", in_axes=1, devices=devices)
  state, penalties = jax.device_get(pmapped(real, fake))
  for t_name, key, scores in (("real", "real_anchor", real), ("fake", "fake_anchor", fake)):
    expected = numpy_debiased_ema([scores[0].mean(), scores[1].mean()], 0.5)[-1]
    np.testing.assert_allclose(state[key], np.full(4, expected), rtol=1e-5, err_msg=t_name)
  # The devices' penalties average to the whole batch's, so pmean-ed gradients are the global ones.
  anchors = numpy_debiased_ema([real[0].mean()], 0.5)[0], numpy_debiased_ema([fake[0].mean()], 0.5)[0]
  np.testing.assert_allclose(
    np.mean(penalties[:, 0]), numpy_lecam(real[0].ravel(), fake[0].ravel(), *anchors, one_sided=True), rtol=1e-5
  )


# --- One GAN step with each, on random data.


def tiny_gan_config(regularizers, n_critic=1):
  config = gan.default_config()
  config.model.generator = dict(name="mlp_generator", hidden_sizes=(16,), use_batch_norm=True)
  config.model.discriminator = dict(name="mlp_discriminator", hidden_sizes=(16,))
  config.noise_dim = 8
  config.batch_size = 8
  config.n_critic = n_critic
  config.regularizers = regularizers
  return config


def one_gan_step(config, devices=1, parallelism="jit"):
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh(jax.devices()[:devices])
  run = run_state.create_or_restore(task, mesh, image_shape=(28, 28, 1), seed=0)
  step = parallel.compile_train_step(task, run.shapes, mesh, parallelism=parallelism)
  data = np.random.default_rng(0)
  batch = {
    "image": data.integers(0, 256, (task.examples_per_step, 28, 28, 1), dtype=np.uint8),
    "label": data.integers(0, 10, task.examples_per_step).astype(np.int32),
  }
  batch = parallel.to_global_batch(batch, parallel.batch_sharding(mesh), device_axis=parallelism == "pmap")
  state, metrics = step(run.state, batch, jax.random.key(1))
  return jax.device_get(state), {k: float(v) for k, v in jax.device_get(metrics).items()}


@pytest.mark.parametrize(
  "regularizers, metrics",
  [
    ("bcr", {"bcr_real", "bcr_fake"}),
    ("lecam", {"lecam", "lecam_real_anchor", "lecam_fake_anchor"}),
    ("diffaugment,bcr,lecam", {"bcr_real", "bcr_fake", "lecam"}),
  ],
)
def test_one_gan_step_with_the_regularizer(regularizers, metrics):
  state, got = one_gan_step(tiny_gan_config(regularizers, n_critic=2))
  assert metrics <= set(got)
  assert all(np.isfinite(got[name]) for name in ("d_loss", "g_loss", *metrics))
  assert set(state.regularizer_state) == set(regularizers.split(","))
  if "lecam" in regularizers:
    assert int(state.regularizer_state["lecam"]["updates"]) == 2  # Both critic updates, the scanned one too.


def test_one_gan_step_with_diffaugment_changes_what_d_sees():
  _, plain = one_gan_step(tiny_gan_config(""))
  _, augmented = one_gan_step(tiny_gan_config("diffaugment"))
  assert all(np.isfinite(augmented[name]) for name in ("d_loss", "g_loss", "d_real", "d_fake"))
  assert augmented["d_real"] != plain["d_real"] and augmented["g_loss"] != plain["g_loss"]


@pytest.mark.parametrize("parallelism", ["jit", "pmap"])
def test_lecam_first_anchors_are_the_whole_batchs_mean_scores(parallelism):
  """After one critic update the anchors are its mean scores over all 4 devices' examples: `d_real`, `d_fake`."""
  state, metrics = one_gan_step(tiny_gan_config("lecam"), devices=4, parallelism=parallelism)
  anchors = state.regularizer_state["lecam"]
  np.testing.assert_allclose(anchors["real_anchor"], metrics["d_real"], rtol=1e-5)
  np.testing.assert_allclose(anchors["fake_anchor"], metrics["d_fake"], rtol=1e-5)


# --- LeCam's anchors are checkpointed: a resumed run continues them exactly.


def train_lecam_gan(workdir, total_steps, local_dir, data_dir, feature_network_dir):
  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "batch_size": 8,
    "n_critic": 2,  # The anchors are also carried through the scanned critic update.
    "total_steps": total_steps,
    "log_every_steps": 1,
    "eval_every_steps": total_steps,
    "checkpoint.every_steps": 2,
    "progress_bar": False,
    "regularizers": "lecam",
    "model.generator.hidden_sizes": "(16,)",
    "model.discriminator.hidden_sizes": "(16,)",
    **tiny_gan_flags(feature_network_dir),
  }
  config = str(REPO / "configs" / "mlp_gan_fashion_mnist.py")
  args = ["gdjax", "train", "--config", config, "--workdir", str(workdir)]
  assert cli.main([*args, *[f"--config.{k}={v}" for k, v in flags.items()]]) == 0


def test_a_resumed_lecam_run_has_bit_identical_anchors_and_parameters(
  tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir
):
  data = (fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir)
  train_lecam_gan(tmp_path / "uninterrupted", 4, *data)
  train_lecam_gan(tmp_path / "resumed", 2, *data)  # Stops at 2 with a checkpoint...
  train_lecam_gan(tmp_path / "resumed", 4, *data)  # ...which this run restores and continues.
  _, uninterrupted = run_state.restore_workdir(tmp_path / "uninterrupted")
  _, resumed = run_state.restore_workdir(tmp_path / "resumed")
  uninterrupted, resumed = jax.device_get(uninterrupted.state), jax.device_get(resumed.state)
  assert int(resumed.step) == 4 and int(resumed.regularizer_state["lecam"]["updates"]) == 8
  assert float(resumed.regularizer_state["lecam"]["real_anchor"]) != 0.0
  jax.tree.map(np.testing.assert_array_equal, resumed.regularizer_state, uninterrupted.regularizer_state)
  jax.tree.map(np.testing.assert_array_equal, resumed.generator, uninterrupted.generator)
  jax.tree.map(np.testing.assert_array_equal, resumed.discriminator, uninterrupted.discriminator)
