"""WGAN-GP on Fashion-MNIST: Wasserstein critic with gradient penalty 10, n_critic 5.

Run:
  gdjax train --config configs/wgan_gp_fashion_mnist.py --workdir workdirs/wgan_gp

Gulrajani et al. 2017: Adam 1e-4, beta1 0.5, beta2 0.9, five critic updates
(each on its own real batch) per generator update. The critic has no batch
norm, as the penalty requires.

Takes: 1,000 generator steps (5,000 critic steps); 17.1-17.4 CPU-minutes of
training per seed on the 2-core CPU, 2026-11-22 (about 44 before gdjax's
matmul/im2col convolution forms; benchmarks/conv_forms.py).
Reaches (mean ± sd over seeds 0-2, `benchmarks/gan_quality.py`; EMA
generator, 10,000 samples vs the test split, gdjax's classifier features):
FID 351.7 ± 3.7, KID 6.69 ± 0.04, precision 0.766 ± 0.010, recall
0.031 ± 0.008, classifier score 2.93 ± 0.05.
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
