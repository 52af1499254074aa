"""DCGAN on Fashion-MNIST with the non-saturating loss: gdjax's default GAN and `make run`'s.

Run:
  gdjax train --config configs/dcgan_fashion_mnist.py --workdir workdirs/dcgan
  gdjax eval --workdir workdirs/dcgan --checkpoint best
  gdjax sample --workdir workdirs/dcgan --num 64 --out samples.npy --grid samples.png

Generator: noise 100 -> dense 7x7x128 -> ConvTranspose 4x4/2 to 14x14x64 ->
ConvTranspose 4x4/2 to 28x28x1, tanh, batch norm. Discriminator: conv 4x4/2
to 14x14x64 -> conv 4x4/2 to 7x7x128 -> dense 1, leaky ReLU 0.2. Adam 2e-4,
beta1 0.5, batch 64 (Radford et al. 2016). Trained on the first 54,000
training images; the best checkpoint is kept by FID against the last 6,000.

Takes: 3,000 steps, about 7 minutes on the 2-core CPU.
Reaches: docs/results.md, "GANs" (made by `gdjax sweep --sweep configs/sweeps/gans.py`).
"""

from gdjax.tasks import gan


def get_config():
  return gan.default_config()
