"""Recipe candidate: the seed DCGAN with batch norm after D's second convolution (Radford et al. 2016).

Run: gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes
Reaches: docs/gan_recipes.md.
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.model.discriminator.use_batch_norm = True
  return config
