"""`compute_dtype="bfloat16"`: bfloat16 arithmetic, float32 parameters, state and outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gan import gan_task, run_gan_steps
from test_parallel import random_batches, run_steps, small_cnn_config

from gdjax import models, tasks
from gdjax.errors import ConfigError
from gdjax.tasks import classifier

IMAGES = jnp.linspace(-1, 1, 4 * 12 * 12).reshape(4, 12, 12, 1)  # Small: XLA:CPU compiles bfloat16 slowly.
NOISE = jnp.linspace(-2, 2, 4 * 16).reshape(4, 16)
LABELS = jnp.array([0, 3, 7, 9])

# (model class, constructor arguments, call arguments)
MODELS = {
  "linear": (models.LinearClassifier, {}, (IMAGES,)),
  "mlp": (models.MLPClassifier, dict(hidden_sizes=(32,)), (IMAGES,)),
  "cnn": (models.CNNClassifier, dict(stage_widths=(4, 8), dense_width=16), (IMAGES,)),
  "dcgan_generator": (models.DCGANGenerator, dict(width=8, num_classes=10), (NOISE, LABELS)),
  "dcgan_discriminator": (
    models.DCGANDiscriminator,
    dict(width=8, spectral_norm=True, num_classes=10),
    (IMAGES, LABELS),
  ),
  "mlp_generator": (models.MLPGenerator, dict(hidden_sizes=(32,), use_batch_norm=True), (NOISE,)),
  "mlp_discriminator": (models.MLPDiscriminator, dict(hidden_sizes=(32,)), (IMAGES,)),
}


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_models_compute_in_bfloat16_and_match_float32(name):
  cls, kwargs, inputs = MODELS[name]
  float32_model, bfloat16_model = cls(**kwargs), cls(**kwargs, dtype=jnp.bfloat16)
  variables = bfloat16_model.init(jax.random.key(0), *inputs)
  # Parameters (and batch statistics) are created in float32 whatever the compute dtype.
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  leaves, treedef = jax.tree.flatten(variables["params"])  # Away from zero init (the linear model's).
  keys = jax.random.split(jax.random.key(1), len(leaves))
  noisy = [leaf + 0.05 * jax.random.normal(key, leaf.shape) for leaf, key in zip(leaves, keys, strict=True)]
  variables = {**variables, "params": jax.tree.unflatten(treedef, noisy)}
  reference = float32_model.apply(variables, *inputs)
  outputs = bfloat16_model.apply(variables, *inputs)
  assert outputs.dtype == jnp.float32 and outputs.shape == reference.shape
  # bfloat16 keeps 8 significant bits (relative error 2**-8 per rounding); a few layers of
  # rounding stay within a few percent of the output's scale.
  scale = float(jnp.max(jnp.abs(reference))) + 1e-3
  np.testing.assert_allclose(outputs, reference, atol=0.05 * scale)
  assert not np.array_equal(outputs, reference)  # Otherwise the bfloat16 path did not run.
  # The matmuls and convolutions on activations (leading dimension: the batch of 4) run in
  # bfloat16; spectral norm's power iteration on the weights stays float32.
  jaxpr = str(jax.make_jaxpr(lambda v: bfloat16_model.apply(v, *inputs))(variables))
  heavy_ops = [line for line in jaxpr.splitlines() if "dot_general[" in line or "conv_general_dilated[" in line]
  on_activations = [line for line in heavy_ops if "[4," in line]
  assert on_activations and all("bf16[4," in line for line in on_activations)


def test_gan_step_in_bfloat16_keeps_float32_state_and_trains():
  task = gan_task(compute_dtype="bfloat16")
  initial, state, metrics = run_gan_steps(task, 3)
  assert {leaf.dtype for leaf in jax.tree.leaves(state) if jnp.issubdtype(leaf.dtype, jnp.floating)} == {
    jnp.dtype(jnp.float32)
  }
  assert all(np.isfinite(value) for value in jax.tree.leaves(metrics))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), initial.generator, state.generator)
  assert all(jax.tree.leaves(changed))


def test_classifier_step_in_bfloat16_is_close_to_float32():
  batches = random_batches(3)
  config = small_cnn_config()
  float32_state, float32_metrics = run_steps(config, jax.devices()[:1], batches)
  config.compute_dtype = "bfloat16"
  bfloat16_state, bfloat16_metrics = run_steps(config, jax.devices()[:1], batches)
  assert jax.tree.leaves(bfloat16_state.params)[0].dtype == jnp.float32
  np.testing.assert_allclose(bfloat16_metrics["loss"], float32_metrics["loss"], rtol=0.02)


def test_unknown_compute_dtype_is_explained():
  config = classifier.default_config()
  config.compute_dtype = "float16"
  with pytest.raises(ConfigError, match="compute_dtype.*bfloat16"):
    tasks.build_task(config)
