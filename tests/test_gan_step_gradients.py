"""The GAN step's gradients equal `jax.grad` of the textbook objective, for every loss and penalty.

The step is optimised: G runs forward once and its VJP is reused for the
G update, a stateless D scores real and fake images in one pass, the first
critic updates run in a `lax.scan`, and penalties come from a registry. Here
the same update is written the plain way, straight from the papers:
for each critic update, D's loss on a separate real pass and fake pass plus
the penalty, differentiated with `jax.grad`; then G's loss through the
updated D, differentiated with `jax.grad` through a fresh G forward pass.

With plain SGD the parameters move by exactly minus the learning rate times
the gradient, so the step's new parameters show the gradients it used (a
small rate keeps three critic updates in a row well away from overflow). The
noise is drawn the documented way (`gan.critic_keys`), so both sides see the
same draws.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gdjax import diff_augment, gan_losses, gan_regularizers, models, parallel, run_state, samples
from gdjax.tasks import gan

NOISE_DIM, BATCH, LEARNING_RATE = 8, 4, 0.01

# Each loss as the papers write it: what D minimises and what G minimises, on logits or raw scores.
TEXTBOOK_LOSSES = {
  "minimax": (
    lambda real, fake: -jnp.log(jax.nn.sigmoid(real)) - jnp.log(1 - jax.nn.sigmoid(fake)),
    lambda fake: jnp.log(1 - jax.nn.sigmoid(fake)),
  ),
  "non_saturating": (
    lambda real, fake: -jnp.log(jax.nn.sigmoid(real)) - jnp.log(1 - jax.nn.sigmoid(fake)),
    lambda fake: -jnp.log(jax.nn.sigmoid(fake)),
  ),
  "least_squares": (lambda real, fake: 0.5 * (real - 1) ** 2 + 0.5 * fake**2, lambda fake: 0.5 * (fake - 1) ** 2),
  "hinge": (lambda real, fake: jnp.maximum(0, 1 - real) + jnp.maximum(0, 1 + fake), lambda fake: -fake),
  "wasserstein": (lambda real, fake: fake - real, lambda fake: -fake),
}


def gan_config(
  *, loss="non_saturating", regularizers="", weight=0.0, n_critic=1, conv=False, conditional=False, d_batch_norm=False
):
  config = gan.default_config()
  if conv:
    config.model.generator.width = 4
    config.model.discriminator.width = 4
    config.model.discriminator.spectral_norm = conditional  # Stateful D: its power iteration advances per pass.
    config.model.discriminator.use_batch_norm = d_batch_norm
  else:
    config.model.generator = dict(name="mlp_generator", hidden_sizes=(16,), use_batch_norm=True)
    config.model.discriminator = dict(name="mlp_discriminator", hidden_sizes=(16,))
  config.noise_dim = NOISE_DIM
  config.batch_size = BATCH
  config.n_critic = n_critic
  config.conditional = conditional
  config.gan_loss = loss
  config.regularizers = regularizers
  for name in regularizers.split(",") if regularizers else ():
    if "weight" in config.regularizer_options[name]:
      config.regularizer_options[name].weight = weight
  for optimizer in ("generator_optimizer", "discriminator_optimizer"):
    config[optimizer] = ml_collections.ConfigDict(dict(name="sgd", learning_rate=LEARNING_RATE))
  return config


def textbook_step(config, state, images, labels, rng):
  """New (G params, D params) after one step, computed the plain way."""
  generator = models.build_model(config.model.generator, num_classes=10 if config.conditional else 0)
  discriminator = models.build_model(config.model.discriminator, num_classes=10 if config.conditional else 0)
  d_loss_fn, g_loss_fn = TEXTBOOK_LOSSES[config.gan_loss]
  num_classes = 10 if config.conditional else 1
  step_rng = jax.random.fold_in(rng, state.step)
  n = config.n_critic
  real_all = samples.to_float(images).reshape(BATCH, n, 28, 28, 1)
  labels_all = labels.reshape(BATCH, n)
  g_vars, d_vars = state.generator, state.discriminator
  options = config.regularizer_options

  def augment(rng, images):
    """DiffAugment, the only regulariser that augments, drawing from its key as the task's `augment` gives it."""
    if config.regularizers != "diffaugment":
      return images
    return diff_augment.augment(jax.random.fold_in(rng, 0), images, options.diffaugment.policy)

  def draw(keys):
    noise_rng, label_rng = jax.random.split(keys.noise)
    return jax.random.normal(noise_rng, (BATCH, NOISE_DIM)), jax.random.randint(label_rng, (BATCH,), 0, num_classes)

  def d_score(variables, x, y, train):
    if train:
      return discriminator.apply(variables, x, y, train=True, mutable=["batch_stats"])
    return discriminator.apply(variables, x, y, train=False)

  def d_objective(d_params, batch_stats, real, real_labels, fake, fake_labels, penalty_rng, augment_rng):
    real_rng, fake_rng = jax.random.split(augment_rng)
    real, fake = augment(real_rng, real), augment(fake_rng, fake)
    variables = {"params": d_params, "batch_stats": batch_stats}
    real_scores, updates = d_score(variables, real, real_labels, True)
    fake_scores, updates = d_score({"params": d_params, **updates}, fake, fake_labels, True)
    loss = jnp.mean(d_loss_fn(real_scores, fake_scores))

    def critic(x):
      return d_score(variables, x, real_labels, False)

    if config.regularizers == "wgan_gp":
      u = jax.random.uniform(penalty_rng, (BATCH, 1, 1, 1))
      x_hat = u * real + (1 - u) * fake
      grads = jnp.stack([jax.grad(lambda x: critic(x[None])[0])(x) for x in x_hat])  # One example at a time.
      loss += config.regularizer_options.wgan_gp.weight * jnp.mean((jnp.sqrt(jnp.sum(grads**2, (1, 2, 3))) - 1) ** 2)
    elif config.regularizers == "r1":
      grads = jnp.stack([jax.grad(lambda x: critic(x[None])[0])(x) for x in real])
      loss += config.regularizer_options.r1.weight * jnp.mean(jnp.sum(grads**2, (1, 2, 3)))
    elif config.regularizers == "bcr":  # Separate inference-mode passes; T as the regulariser draws it.
      transform = gan_regularizers.BalancedConsistency().transform
      real_t_rng, fake_t_rng = jax.random.split(penalty_rng)
      transformed_real, transformed_fake = transform(real_t_rng, real), transform(fake_t_rng, fake)
      real_term = jnp.mean((critic(real) - critic(transformed_real)) ** 2)
      fake_term = jnp.mean(
        (d_score(variables, fake, fake_labels, False) - d_score(variables, transformed_fake, fake_labels, False)) ** 2
      )
      loss += options.bcr.real_weight * real_term + options.bcr.fake_weight * fake_term
    elif config.regularizers == "lecam":  # The first update: the anchors are its own mean scores, held constant.
      real_anchor, fake_anchor = jax.lax.stop_gradient((jnp.mean(real_scores), jnp.mean(fake_scores)))
      penalty = jnp.mean(jax.nn.relu(real_scores - fake_anchor) ** 2) + jnp.mean(
        jax.nn.relu(real_anchor - fake_scores) ** 2
      )
      loss += options.lecam.weight * penalty
    return loss, updates.get("batch_stats", batch_stats)

  for j in range(n):
    keys = gan.critic_keys(step_rng, j)
    noise, fake_labels = draw(keys)
    fake, _ = generator.apply(g_vars, noise, fake_labels, train=True, mutable=["batch_stats"])
    d_grads, d_batch_stats = jax.grad(d_objective, has_aux=True)(
      d_vars["params"],
      d_vars["batch_stats"],
      real_all[:, j],
      labels_all[:, j],
      fake,
      fake_labels,
      jax.random.fold_in(keys.regularizers, 0),
      keys.augment,
    )
    d_params = jax.tree.map(lambda p, g: p - LEARNING_RATE * g, d_vars["params"], d_grads)
    d_vars = {"params": d_params, "batch_stats": d_batch_stats}

  def g_objective(g_params):
    fake, _ = generator.apply({**g_vars, "params": g_params}, noise, fake_labels, train=True, mutable=["batch_stats"])
    fake = augment(gan.generator_keys(step_rng, n).augment, fake)
    if config.model.discriminator.get("use_batch_norm", False):  # D normalises the fakes by their own statistics.
      return jnp.mean(g_loss_fn(d_score(d_vars, fake, fake_labels, True)[0]))
    return jnp.mean(g_loss_fn(d_score(d_vars, fake, fake_labels, False)))

  g_grads = jax.grad(g_objective)(g_vars["params"])
  return jax.tree.map(lambda p, g: p - LEARNING_RATE * g, g_vars["params"], g_grads), d_vars["params"]


CASES = {
  **{f"{loss}": dict(loss=loss) for loss in TEXTBOOK_LOSSES},
  "wgan_gp": dict(loss="wasserstein", regularizers="wgan_gp", weight=10.0),
  "r1": dict(loss="non_saturating", regularizers="r1", weight=5.0),
  "diffaugment": dict(loss="non_saturating", regularizers="diffaugment"),
  "bcr": dict(loss="hinge", regularizers="bcr"),
  "lecam": dict(loss="hinge", regularizers="lecam"),
  "three_critic_updates_with_wgan_gp": dict(loss="wasserstein", regularizers="wgan_gp", weight=10.0, n_critic=3),
  "conditional_dcgan_with_spectral_norm": dict(loss="hinge", conv=True, conditional=True),
  "dcgan_with_batch_norm_in_d": dict(loss="non_saturating", conv=True, d_batch_norm=True),
}


@pytest.mark.parametrize("case", CASES)
def test_step_gradients_equal_jax_grad_of_the_textbook_objective(case):
  config = gan_config(**CASES[case])
  task = gan.GANTask(config)
  mesh = parallel.make_data_mesh(jax.devices()[:1])
  state = run_state.create_or_restore(task, mesh, image_shape=(28, 28, 1), seed=0).state
  data = np.random.default_rng(0)
  images = data.integers(0, 256, (task.examples_per_step, 28, 28, 1), dtype=np.uint8)
  labels = data.integers(0, 10, task.examples_per_step).astype(np.int32)
  rng = jax.random.key(3)
  state = state.replace(step=jnp.asarray(5, jnp.int32))  # Any step: its number is folded into the keys.
  before = jax.device_get(state)

  new_state, _ = jax.jit(task.train_step)(state, {"image": images, "label": labels}, rng)
  expected_g, expected_d = jax.jit(functools.partial(textbook_step, config))(before, images, labels, rng)

  for name, got, expected, old in (
    ("G", new_state.generator["params"], expected_g, before.generator["params"]),
    ("D", new_state.discriminator["params"], expected_d, before.discriminator["params"]),
  ):
    step_updates = jax.tree.map(lambda a, o: np.asarray(a, np.float64) - o, got, old)
    textbook_updates = jax.tree.map(lambda b, o: np.asarray(b, np.float64) - o, expected, old)
    # Tolerance relative to the largest update of the model: a bias that batch norm makes
    # irrelevant has a gradient of zero up to rounding on both sides.
    scale = max(np.max(np.abs(u)) for u in jax.tree.leaves(textbook_updates))
    assert scale > 1e-6, f"{name} did not move: the comparison would be empty"
    for (path, step_update), textbook_update in zip(
      jax.tree_util.tree_leaves_with_path(step_updates), jax.tree.leaves(textbook_updates)
    ):
      np.testing.assert_allclose(
        step_update,
        textbook_update,
        rtol=1e-3,
        atol=1e-4 * scale,
        err_msg=f"{case}: {name}{jax.tree_util.keystr(path)}",
      )


def test_registered_penalties_all_have_a_textbook_case():
  from gdjax import gan_regularizers

  covered = {CASES[case].get("regularizers") for case in CASES}
  assert set(gan_regularizers.REGULARIZERS) <= covered
  assert set(gan_losses.ADVERSARIAL_LOSSES) <= set(TEXTBOOK_LOSSES)
