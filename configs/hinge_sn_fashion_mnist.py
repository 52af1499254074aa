"""Hinge-loss GAN with a spectrally normalised discriminator on Fashion-MNIST.

Run:
  gdjax train --config configs/hinge_sn_fashion_mnist.py --workdir workdirs/hinge_sn

Miyato et al. 2018 (spectral norm in every D layer, hinge loss) with the
two time-scale update rule of Heusel et al. 2017: D learns at 4e-4, G at 1e-4.

Takes: 3,000 steps; 11.9 ± 0.5 CPU-minutes of training on the 2-core CPU
(15-21 min wall-clock with other runs sharing it), 2026-11-22.
Reaches (EMA generator, 10,000 samples vs the test split, gdjax's classifier
features; mean ± sd over seeds 0-2): FID 369.9 ± 2.7, KID 7.14 ± 0.02,
precision 0.776 ± 0.018, recall 0.028 ± 0.005, classifier score 2.73 ± 0.03.
Unconditionally, at this budget, no better than the plain DCGAN; with labels
and a projection discriminator (cdcgan_fashion_mnist.py) the same loss and
normalisation reach FID 126. Measured by `benchmarks/gan_quality.py --seeds 0 1 2`.
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.gan_config()
  config.gan_loss = "hinge"
  config.model.discriminator.spectral_norm = True
  config.generator_optimizer.learning_rate = 1e-4
  config.discriminator_optimizer.learning_rate = 4e-4
  return config
