"""VAE on dynamically binarised Fashion-MNIST: MLP encoder and decoder, Bernoulli decoder, Gaussian prior.

Run:
  gdjax train --config configs/vae_fashion_mnist.py --workdir workdirs/vae
  gdjax eval --workdir workdirs/vae --checkpoint best --split test   # the ELBO and log p(x) with k = 5,000
  gdjax sample --workdir workdirs/vae --num 100 --out samples.npy --grid samples.png

Trains on the first 54,000 training images, binarised afresh at every step
(x ~ Bernoulli(pixel / 255)), on the ELBO with the reparameterisation trick.
The best checkpoint is kept by the importance-weighted bound with k = 100 on
the last 6,000 training images.

Takes and reaches: see docs/results.md, "VAE".
"""

from gdjax.tasks import vae


def get_config():
  return vae.default_config()
