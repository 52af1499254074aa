"""The original MLP GAN on Fashion-MNIST: minimax D loss, non-saturating G loss.

Run:
  gdjax train --config configs/mlp_gan_fashion_mnist.py --workdir workdirs/mlp_gan

Generator noise 100 -> 256 (ReLU) -> 784 (tanh); discriminator 784 -> 256
(leaky ReLU) -> 1. Adam 2e-4, beta1 0.5, batch 64 (Goodfellow et al. 2014).

Takes: 10,000 steps; 2.7-3.0 CPU-minutes of training on the 2-core CPU
(2.7-3.6 min wall-clock with another run beside it), 2026-11-22.
Reaches (EMA generator, 10,000 samples vs the test split, gdjax's classifier
features; mean ± sd over seeds 0-2): FID 305.2 ± 5.9, KID 5.91 ± 0.21,
precision 0.818 ± 0.008, recall 0.013 ± 0.005, classifier score 3.91 ± 0.11.
Measured by `benchmarks/gan_quality.py --seeds 0 1 2`.
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.gan_config()
  config.model.generator = dict(name="mlp_generator", hidden_sizes=(256,), output_activation="tanh")
  config.model.discriminator = dict(name="mlp_discriminator", hidden_sizes=(256,))
  config.total_steps = 10_000
  config.eval_every_steps = 2500
  config.checkpoint.every_steps = 2500
  return config
