"""Recipe candidate: hinge loss, spectral norm in D, D at 4e-4 and G at 1e-4 (Miyato et al. 2018; Heusel et al. 2017).

Run: gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes
Reaches: docs/gan_recipes.md.
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.gan_loss = "hinge"
  config.model.discriminator.spectral_norm = True
  config.generator_optimizer.learning_rate = 1e-4
  config.discriminator_optimizer.learning_rate = 4e-4
  return config
