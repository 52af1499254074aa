"""The convolutional VAE of vae_conv_fashion_mnist.py trained twice as long, for a better likelihood.

Run:
  gdjax train --config configs/vae_conv_long_fashion_mnist.py --workdir workdirs/vae_conv_long
  gdjax eval --workdir workdirs/vae_conv_long --checkpoint best --split 'test[:2000]' --evals likelihood_k5000

The same model, objective and data as vae_conv_fashion_mnist.py (ELBO,
dynamically binarised images, best checkpoint by the k = 100 bound on the
last 6,000 training images), for 40,000 steps of batch 128 (95 epochs of
the 54,000 training images) on a cosine schedule. A convolutional decoder
costs about seven times the MLP's per image, so its k = 5,000 estimate is
read on the first 2,000 test images (a fixed subset); the k = 100 bound
covers the whole test split.

Takes and reaches: see docs/results.md, "VAE".
"""

from gdjax.tasks import vae


def get_config():
  config = vae.default_config()
  config.model.architecture = "conv"
  config.model.hidden_sizes = (32, 64)
  config.total_steps = 40_000
  config.eval_every_steps = 20_000
  config.evals.likelihood.every_steps = 5_000
  config.checkpoint.every_steps = 5_000
  return config
