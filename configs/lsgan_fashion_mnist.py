"""LSGAN on Fashion-MNIST: the DCGAN architecture with the least-squares loss.

Run:
  gdjax train --config configs/lsgan_fashion_mnist.py --workdir workdirs/lsgan

Mao et al. 2017, targets a=0 (fake), b=1 (real), c=1 (generator). Adam 2e-4,
beta1 0.5, batch 64.

Takes: 3,000 steps, about 7 minutes on the 2-core CPU.
Reaches: not in the current results tables; `gdjax sweep` with this config
added to configs/sweeps/gans.py measures it.
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.gan_loss = "least_squares"
  return config
