"""The convolutional VAE of vae_conv_long_fashion_mnist.py trained on the importance-weighted bound with k = 5 samples.

Run:
  gdjax train --config configs/vae_conv_iwae_fashion_mnist.py --workdir workdirs/vae_conv_iwae
  gdjax eval --workdir workdirs/vae_conv_iwae --checkpoint best --split 'test[:2000]' --evals likelihood_k5000

The convolutional pair (conv 4x4/2 32 -> 64, dense 256, mirror decoder) on
the IWAE bound (Burda et al. 2016) with k = 5 draws per image, for 40,000
steps of batch 128 (95 epochs of the 54,000 training images) on a cosine
schedule; best checkpoint by the k = 100 bound on the last 6,000 training
images. Each step decodes five draws per image, so a step costs about
three times the ELBO's. As for the other convolutional configs, the k = 5,000
estimate is read on the first 2,000 test images (a fixed subset); the
k = 100 bound covers the whole test split.

Takes and reaches: see docs/results.md, "VAE".
"""

from gdjax.tasks import vae


def get_config():
  config = vae.default_config()
  config.model.architecture = "conv"
  config.model.hidden_sizes = (32, 64)
  config.objective = "iwae"
  config.num_importance_samples = 5
  config.total_steps = 40_000
  config.eval_every_steps = 40_000
  config.evals.likelihood.every_steps = 10_000
  config.checkpoint.every_steps = 5_000
  return config
