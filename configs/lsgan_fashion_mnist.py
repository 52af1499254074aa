"""LSGAN on Fashion-MNIST: the DCGAN architecture with the least-squares loss.

Run:
  gdjax train --config configs/lsgan_fashion_mnist.py --workdir workdirs/lsgan

Mao et al. 2017, targets a=0 (fake), b=1 (real), c=1 (generator). Adam 2e-4,
beta1 0.5, batch 64.

Takes / reaches: see README (measured by benchmarks/gan_quality.py).
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.gan_config()
  config.gan_loss = "least_squares"
  return config
