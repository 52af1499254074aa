"""WGAN-GP on Fashion-MNIST: Wasserstein critic with gradient penalty 10, n_critic 5.

Run:
  gdjax train --config configs/wgan_gp_fashion_mnist.py --workdir workdirs/wgan_gp

Gulrajani et al. 2017: Adam 1e-4, beta1 0.5, beta2 0.9, five critic updates
(each on its own real batch) per generator update. The critic has no batch
norm, as the penalty requires.

Takes: 1,000 generator steps (5,000 critic steps), about 15 CPU-minutes on the 2-core CPU.
Reaches: not in the current results tables; `gdjax sweep` with this config
added to configs/sweeps/gans.py measures it.
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.gan_loss = "wasserstein"
  config.regularizers = "wgan_gp"
  config.regularizer_options.wgan_gp.weight = 10.0
  config.n_critic = 5
  config.total_steps = 1000
  config.eval_every_steps = 500
  config.checkpoint.every_steps = 500
  for optimizer in (config.generator_optimizer, config.discriminator_optimizer):
    optimizer.learning_rate = 1e-4
    optimizer.b1 = 0.5
    optimizer.b2 = 0.9
  return config
