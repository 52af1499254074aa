"""Data parallelism: the same steps on 1 device and on 4 give the same parameters."""

import functools

import jax
import numpy as np
import pytest

from gdjax import parallel, run_state, tasks
from gdjax.tasks import classifier, gan


def small_cnn_config():
  config = classifier.default_config()
  config.model = dict(name="cnn", stage_widths=(4, 8), convs_per_stage=1, dense_width=16, dropout_rate=0.2)
  config.augment.flip = True
  config.augment.max_shift = 2
  config.optimizer.learning_rate = 3e-3
  config.total_steps = 10
  return config


def run_steps(config, devices, batches):
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh(devices)
  run = run_state.create_or_restore(task, mesh, image_shape=(28, 28, 1), seed=0)
  state, rng = run.state, jax.random.key(0)
  step = parallel.jit_train_step(task.train_step, run.shapes, mesh)
  sharding = parallel.batch_sharding(mesh)
  metrics = None
  for batch in batches:
    state, metrics = step(state, parallel.to_global_batch(batch, sharding), rng)
  return jax.device_get(state), jax.device_get(metrics)


def random_batches(n, batch_size=16, seed=0):
  rng = np.random.default_rng(seed)
  return [
    {
      "image": rng.uniform(-1, 1, (batch_size, 28, 28, 1)).astype(np.float32),
      "label": rng.integers(0, 10, batch_size).astype(np.int32),
    }
    for _ in range(n)
  ]


def test_four_devices_are_available():
  assert jax.device_count() == 4


@pytest.mark.parametrize("model", ["cnn", "mlp", "linear"])
def test_one_and_four_devices_give_the_same_parameters(model):
  config = small_cnn_config()
  if model == "mlp":
    config.model = dict(name="mlp", hidden_sizes=(32, 16), dropout_rate=0.2)
  elif model == "linear":
    config.model = dict(name="linear")
    config.loss = "crammer_singer_hinge"
    config.l2_regularization = 1e-3
  batches = random_batches(4)
  state_1, metrics_1 = run_steps(config, jax.devices()[:1], batches)
  state_4, metrics_4 = run_steps(config, jax.devices()[:4], batches)
  assert int(state_1.step) == int(state_4.step) == 4
  # The parameters moved, so agreeing means something.
  initial, _ = run_steps(config, jax.devices()[:1], [])
  assert not np.allclose(jax.tree.leaves(initial.params)[-1], jax.tree.leaves(state_1.params)[-1])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), state_1.params, state_4.params)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), state_1.batch_stats, state_4.batch_stats
  )
  np.testing.assert_allclose(metrics_1["loss"], metrics_4["loss"], rtol=1e-4)


def test_batch_size_not_divisible_by_devices_is_explained():
  from gdjax.errors import ConfigError

  with pytest.raises(ConfigError, match="multiple of 4"):
    parallel.check_global_batch_size(10)


# --- The pmap path.


def run_compiled(config, parallelism, batches, devices=None, rng=None):
  """`batches` through `parallel.compile_train_step` (jit or pmap) on `devices` (default: all 4)."""
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh(devices)
  rng = jax.random.key(0) if rng is None else rng
  run = run_state.create_or_restore(task, mesh, image_shape=(28, 28, 1), seed=0)
  state = run.state
  step = parallel.compile_train_step(task, run.shapes, mesh, parallelism=parallelism)
  sharding = parallel.batch_sharding(mesh)
  for batch in batches:
    state, metrics = step(state, parallel.to_global_batch(batch, sharding, device_axis=parallelism == "pmap"), rng)
  return jax.device_get(state), jax.device_get(metrics)


@pytest.mark.parametrize("model", ["mlp", "linear"])
def test_jit_and_pmap_give_the_same_parameters_on_four_devices(model):
  # No dropout or augmentation: under pmap each device draws its own random
  # numbers, so only a deterministic step can agree with jit exactly.
  config = small_cnn_config()
  config.augment.flip, config.augment.max_shift = False, 0
  config.model = dict(name="mlp", hidden_sizes=(32, 16), dropout_rate=0.0)
  if model == "linear":
    config.model = dict(name="linear")
    config.loss = "crammer_singer_hinge"
    config.l2_regularization = 1e-3
    config.optimizer.grad_clip_norm = 0.5  # Clipping must see the averaged gradient, as under jit.
  batches = random_batches(4)
  state_jit, metrics_jit = run_compiled(config, "jit", batches)
  state_pmap, metrics_pmap = run_compiled(config, "pmap", batches)
  assert int(state_jit.step) == int(state_pmap.step) == 4
  close = functools.partial(np.testing.assert_allclose, rtol=2e-5, atol=2e-6)
  jax.tree.map(close, state_jit.params, state_pmap.params)
  jax.tree.map(close, state_jit.opt_state, state_pmap.opt_state)
  for name in ("loss", "accuracy", "objective", "param_norm"):
    close(metrics_jit[name], metrics_pmap[name])
  assert bool(metrics_pmap[parallel.FINITE_METRIC])


def small_gan_config():
  """An MLP GAN with batch norm in G (statistics to average) and two critic steps per G step."""
  config = gan.default_config()
  config.model.generator = dict(name="mlp_generator", hidden_sizes=(16,), use_batch_norm=True)
  config.model.discriminator = dict(name="mlp_discriminator", hidden_sizes=(16,))
  config.noise_dim = 8
  config.batch_size = 8
  config.n_critic = 2
  return config


def test_pmap_of_a_gan_matches_jit_on_one_device_and_trains_on_four():
  config = small_gan_config()
  batches = [
    {"image": b["image"], "label": b["label"]}
    for b in random_batches(3, batch_size=16, seed=1)  # batch_size * n_critic real images per step.
  ]
  # Under pmap, device i's key is fold_in(key, i); on one device jit sees the same draws given fold_in(key, 0).
  key = jax.random.key(0)
  one = jax.devices()[:1]
  state_jit, _ = run_compiled(config, "jit", batches, devices=one, rng=jax.random.fold_in(key, 0))
  state_pmap, _ = run_compiled(config, "pmap", batches, devices=one, rng=key)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
  jax.tree.map(close, state_jit.generator, state_pmap.generator)
  jax.tree.map(close, state_jit.discriminator, state_pmap.discriminator)
  jax.tree.map(close, state_jit.ema_generator, state_pmap.ema_generator)

  state_4, metrics_4 = run_compiled(config, "pmap", batches, rng=key)
  assert bool(metrics_4[parallel.FINITE_METRIC]) and int(state_4.step) == 3
  assert jax.tree.structure(state_4) == jax.tree.structure(state_jit)  # Checkpoints move between the two.


# --- Joining a multi-process run (arguments only: nothing is started here).


def test_partial_multiprocess_flags_are_explained(monkeypatch):
  from gdjax.errors import ConfigError

  for name in (parallel.ENV_COORDINATOR_ADDRESS, parallel.ENV_NUM_PROCESSES, parallel.ENV_PROCESS_ID):
    monkeypatch.delenv(name, raising=False)
  with pytest.raises(ConfigError, match="missing: --process_id"):
    parallel.initialize_distributed("127.0.0.1:1234", 2, None)
  monkeypatch.setenv(parallel.ENV_PROCESS_ID, "2")
  with pytest.raises(ConfigError, match=r"must lie in \[0, --num_processes\)"):
    parallel.initialize_distributed("127.0.0.1:1234", 2, None)
  monkeypatch.setenv(parallel.ENV_NUM_PROCESSES, "two")
  with pytest.raises(ConfigError, match="GDJAX_NUM_PROCESSES must be an integer"):
    parallel.initialize_distributed()


def test_single_process_needs_no_distributed_runtime(monkeypatch):
  for name in (parallel.ENV_COORDINATOR_ADDRESS, parallel.ENV_NUM_PROCESSES, parallel.ENV_PROCESS_ID):
    monkeypatch.delenv(name, raising=False)
  assert parallel.initialize_distributed() is False  # Not a Cloud TPU VM, nothing given.
  assert parallel.initialize_distributed("127.0.0.1:1234", 1, 0) is False
