"""Convolutional VAE on dynamically binarised Fashion-MNIST: two strided convolutions each way, Bernoulli decoder.

Run:
  gdjax train --config configs/vae_conv_fashion_mnist.py --workdir workdirs/vae_conv
  gdjax eval --workdir workdirs/vae_conv --checkpoint best --split test

Encoder: conv 4x4/2 to 14x14x32, conv 4x4/2 to 7x7x64, dense 256, then the
mean and log-variance of z. Decoder: the mirror image (dense 256, dense
7x7x64, two transposed convolutions 4x4/2). Otherwise as vae_fashion_mnist.py.

Takes and reaches: see docs/results.md, "VAE".
"""

from gdjax.tasks import vae


def get_config():
  config = vae.default_config()
  config.model.architecture = "conv"
  config.model.hidden_sizes = (32, 64)
  return config
