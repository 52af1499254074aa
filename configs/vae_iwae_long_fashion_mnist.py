"""The MLP VAE of vae_long_fashion_mnist.py trained on the importance-weighted bound with k = 5 samples.

Run:
  gdjax train --config configs/vae_iwae_long_fashion_mnist.py --workdir workdirs/vae_iwae_long
  gdjax eval --workdir workdirs/vae_iwae_long --checkpoint best --split test --evals likelihood,likelihood_k5000

The same model and data as vae_long_fashion_mnist.py, trained on the IWAE
bound (Burda et al. 2016) with k = 5 draws per image instead of the ELBO,
for 100,000 steps of batch 128 (237 epochs of the 54,000 training images)
on a cosine schedule; best checkpoint by the k = 100 bound on the last
6,000 training images.

Takes and reaches: see docs/results.md, "VAE".
"""

from gdjax.tasks import vae


def get_config():
  config = vae.default_config()
  config.objective = "iwae"
  config.num_importance_samples = 5
  config.total_steps = 100_000
  config.eval_every_steps = 25_000
  config.evals.likelihood.every_steps = 10_000
  config.checkpoint.every_steps = 10_000
  return config
