"""DCGAN on Fashion-MNIST with the non-saturating loss: gdjax's default GAN.

Run:
  gdjax train --config configs/dcgan_fashion_mnist.py --workdir workdirs/dcgan
  gdjax sample --workdir workdirs/dcgan --num 64 --out samples.npy --grid samples.png

Generator: noise 100 -> dense 7x7x128 -> ConvTranspose 4x4/2 to 14x14x64 ->
ConvTranspose 4x4/2 to 28x28x1, tanh, batch norm. Discriminator: conv 4x4/2
to 14x14x64 -> conv 4x4/2 to 7x7x128 -> dense 1, leaky ReLU 0.2. Adam 2e-4,
beta1 0.5, batch 64 (Radford et al. 2016).

Takes: see README (measured by benchmarks/gan_quality.py).
Reaches: see README; FID on gdjax's Fashion-MNIST classifier features.
"""

from gdjax import config_defaults


def get_config():
  return config_defaults.gan_config()
