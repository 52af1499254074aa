"""Recipe candidate: batch norm in D, G and D at Adam 4e-4 (twice the seed recipe's rate).

Run: gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes
Reaches: docs/gan_recipes.md.
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.model.discriminator.use_batch_norm = True
  config.generator_optimizer.learning_rate = 4e-4
  config.discriminator_optimizer.learning_rate = 4e-4
  return config
