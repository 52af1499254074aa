"""VAE with a 2-D latent space on dynamically binarised Fashion-MNIST, to look at: its evaluations plot the latent means.

Run:
  gdjax train --config configs/vae_2d_fashion_mnist.py --workdir workdirs/vae_2d
  ls workdirs/vae_2d/samples/   # latents_step_*.png: the validation images' latent means, coloured by class

The MLP VAE of vae_fashion_mnist.py with z in R^2: a poor density model (two
numbers per image), but every image's place in the latent space can be
drawn, and the classes' regions and the gaps between them seen.

Takes and reaches: see docs/results.md, "VAE".
"""

from gdjax.tasks import vae


def get_config():
  config = vae.default_config()
  config.model.latent_dim = 2
  config.total_steps = 20_000
  config.eval_every_steps = 5000
  config.checkpoint.every_steps = 5000
  return config
