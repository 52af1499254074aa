"""DCGAN on Fashion-MNIST with the non-saturating loss: gdjax's default GAN and `make run`'s.

Run:
  gdjax train --config configs/dcgan_fashion_mnist.py --workdir workdirs/dcgan
  gdjax eval --workdir workdirs/dcgan --checkpoint best
  gdjax sample --workdir workdirs/dcgan --num 64 --out samples.npy --grid samples.png

Generator: noise 100 -> dense 7x7x128 -> ConvTranspose 4x4/2 to 14x14x64 ->
ConvTranspose 4x4/2 to 28x28x1, tanh, batch norm. Discriminator: conv 4x4/2
to 14x14x64 -> conv 4x4/2 to 7x7x128, batch norm -> dense 1, leaky ReLU 0.2
(Radford et al. 2016). Adam 4e-4 for G and D, beta1 0.5, batch 64, EMA
generator, 5,000 steps. Trained on the first 54,000 training images; the
best checkpoint is kept by FID against the last 6,000. Batch norm in D and
the doubled learning rate were chosen over the seed recipe (plain D, 2e-4)
and the other candidates of configs/gan_recipes/ by validation FID at 3,000
steps; 5,000 steps is the budget that fits `make run` in about 10 minutes
(validation FID by step: docs/gan_recipes.md).

Takes and reaches: `make run` time and the three-seed test figures
(`gdjax sweep --sweep configs/sweeps/gan_default.py`) are in
docs/gan_recipes.md, "The default".
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.model.discriminator.use_batch_norm = True
  config.generator_optimizer.learning_rate = 4e-4
  config.discriminator_optimizer.learning_rate = 4e-4
  config.total_steps = 5000
  return config
