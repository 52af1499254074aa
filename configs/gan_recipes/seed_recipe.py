"""Recipe candidate: the seed DCGAN recipe as gdjax shipped it before batch norm in D (plain D, 3,000 steps).

Run: gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes
Reaches: docs/gan_recipes.md.
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.model.discriminator.use_batch_norm = False
  config.total_steps = 3000
  return config
