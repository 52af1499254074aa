"""Recipe candidate: batch norm in D, an EMA generator with decay 0.99 (a window of about 100 steps).

Run: gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes
Reaches: docs/gan_recipes.md.
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.model.discriminator.use_batch_norm = True
  config.ema_decay = 0.99
  return config
