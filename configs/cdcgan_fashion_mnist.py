"""Conditional DCGAN on Fashion-MNIST with a projection discriminator.

Run:
  gdjax train --config configs/cdcgan_fashion_mnist.py --workdir workdirs/cdcgan
  gdjax eval --workdir workdirs/cdcgan --checkpoint best
  gdjax sample --workdir workdirs/cdcgan --num 100 --labels 0,1,2,3,4,5,6,7,8,9 --out s.npy --grid s.png

The generator concatenates a label embedding to the noise; the discriminator
adds <embed(y), phi(x)> to its score (Miyato & Koyama 2018), with spectral
norm and the hinge loss as in that paper, and D learns at 4e-4, G at 1e-4.
Evaluation also reports how often gdjax's Fashion-MNIST classifier sees the
intended class (`coverage/intended_class_accuracy`).

Takes: 3,000 steps, about 12 CPU-minutes on the 2-core CPU.
Reaches: docs/results.md, "GANs" (FID, coverage and intended class over
three seeds, made by `gdjax sweep --sweep configs/sweeps/gans.py`).
"""

from gdjax.tasks import gan


def get_config():
  config = gan.default_config()
  config.conditional = True
  config.gan_loss = "hinge"
  config.model.discriminator.spectral_norm = True
  config.generator_optimizer.learning_rate = 1e-4
  config.discriminator_optimizer.learning_rate = 4e-4
  return config
