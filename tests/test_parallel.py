"""Data parallelism: the same steps on 1 device and on 4 give the same parameters."""

import functools

import jax
import numpy as np
import pytest

from gdjax import config_defaults, parallel, tasks


def small_cnn_config():
  config = config_defaults.classifier_config()
  config.model = dict(name="cnn", stage_widths=(4, 8), convs_per_stage=1, dense_width=16, dropout_rate=0.2)
  config.augment.flip = True
  config.augment.max_shift = 2
  config.optimizer.learning_rate = 3e-3
  config.total_steps = 10
  return config


def run_steps(config, devices, batches):
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh(devices)
  init_state = functools.partial(task.init_state, image_shape=(28, 28, 1))
  rng = jax.random.key(0)
  shapes = jax.eval_shape(init_state, rng)
  state = jax.jit(init_state, out_shardings=parallel.state_shardings(shapes, mesh))(rng)
  step = parallel.jit_train_step(task.train_step, shapes, mesh)
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
