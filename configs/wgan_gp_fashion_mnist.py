"""WGAN-GP on Fashion-MNIST: Wasserstein critic with gradient penalty 10, n_critic 5.

Run:
  gdjax train --config configs/wgan_gp_fashion_mnist.py --workdir workdirs/wgan_gp

Gulrajani et al. 2017: Adam 1e-4, beta1 0.5, beta2 0.9, five critic updates
(each on its own real batch) per generator update. The critic has no batch
norm, as the penalty requires.

Takes / reaches: see README (measured by benchmarks/gan_quality.py).
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.gan_config()
  config.gan_loss = "wasserstein"
  config.penalty = dict(name="wgan_gp", weight=10.0)
  config.n_critic = 5
  config.total_steps = 1000
  config.eval_every_steps = 500
  config.checkpoint.every_steps = 500
  for optimizer in (config.generator_optimizer, config.discriminator_optimizer):
    optimizer.learning_rate = 1e-4
    optimizer.b1 = 0.5
    optimizer.b2 = 0.9
  return config
