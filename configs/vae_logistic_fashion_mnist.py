"""VAE with a continuous decoder on 8-bit Fashion-MNIST: a discretised logistic per pixel, for samples and FID.

Run:
  gdjax train --config configs/vae_logistic_fashion_mnist.py --workdir workdirs/vae_logistic
  gdjax sample --workdir workdirs/vae_logistic --num 100 --out samples.npy --grid samples.png

The MLP VAE of vae_fashion_mnist.py with p(x|z) a logistic discretised into
the 256 grey levels (Salimans et al. 2017), with a learned log-scale per
pixel, on the pixels themselves rather than binarised ones. Its samples are
grey-level images (the decoder's mean), which the GAN evaluators score
directly. Its likelihoods (nats per image of 8-bit pixels) do not compare
with the binarised models'.

Takes and reaches: see docs/results.md, "VAE".
"""

from gdjax.tasks import vae


def get_config():
  config = vae.default_config()
  config.model.likelihood = "logistic"
  config.evals.likelihood.binarize = False
  config.evals.likelihood_k5000.binarize = False
  return config
