"""The MLP VAE of vae_fashion_mnist.py trained three times longer, for a better likelihood.

Run:
  gdjax train --config configs/vae_long_fashion_mnist.py --workdir workdirs/vae_long
  gdjax eval --workdir workdirs/vae_long --checkpoint best --split test --evals likelihood,likelihood_k5000

The same model, objective and data as vae_fashion_mnist.py (ELBO,
dynamically binarised images, best checkpoint by the k = 100 bound on the
last 6,000 training images), for 60,000 steps of batch 128 (142 epochs of
the 54,000 training images) on the same cosine schedule. The sample
evaluations (FID, coverage, pictures) run every 20,000 steps.

Takes and reaches: see docs/results.md, "VAE".
"""

from gdjax.tasks import vae


def get_config():
  config = vae.default_config()
  config.total_steps = 60_000
  config.eval_every_steps = 20_000
  config.evals.likelihood.every_steps = 10_000
  config.checkpoint.every_steps = 10_000
  return config
