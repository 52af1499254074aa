"""Hinge-loss GAN with a spectrally normalised discriminator on Fashion-MNIST.

Run:
  gdjax train --config configs/hinge_sn_fashion_mnist.py --workdir workdirs/hinge_sn

Miyato et al. 2018 (spectral norm in every D layer, hinge loss) with the
two time-scale update rule of Heusel et al. 2017: D learns at 4e-4, G at 1e-4.

Takes / reaches: see README (measured by benchmarks/gan_quality.py).
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.gan_config()
  config.gan_loss = "hinge"
  config.model.discriminator.spectral_norm = True
  config.generator_optimizer.learning_rate = 1e-4
  config.discriminator_optimizer.learning_rate = 4e-4
  return config
