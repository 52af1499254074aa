"""The original MLP GAN on Fashion-MNIST: minimax D loss, non-saturating G loss.

Run:
  gdjax train --config configs/mlp_gan_fashion_mnist.py --workdir workdirs/mlp_gan

Generator noise 100 -> 256 (ReLU) -> 784 (tanh); discriminator 784 -> 256
(leaky ReLU) -> 1. Adam 2e-4, beta1 0.5, batch 64 (Goodfellow et al. 2014).

Takes: 10,000 steps, about 3 CPU-minutes on the 2-core CPU.
Reaches: docs/results.md, "GANs" (made by `gdjax sweep --sweep configs/sweeps/gans.py`).
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.model.generator = dict(name="mlp_generator", hidden_sizes=(256,), output_activation="tanh")
  config.model.discriminator = dict(name="mlp_discriminator", hidden_sizes=(256,))
  config.total_steps = 10_000
  config.eval_every_steps = 2500
  config.checkpoint.every_steps = 2500
  return config
