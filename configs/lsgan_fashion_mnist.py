"""LSGAN on Fashion-MNIST: the DCGAN architecture with the least-squares loss.

Run:
  gdjax train --config configs/lsgan_fashion_mnist.py --workdir workdirs/lsgan

Mao et al. 2017, targets a=0 (fake), b=1 (real), c=1 (generator). Adam 2e-4,
beta1 0.5, batch 64.

Takes: 3,000 steps; 12.2-13.4 CPU-minutes of training on the 2-core CPU
(15-21 min wall-clock with other runs sharing it), 2026-11-22.
Reaches (EMA generator, 10,000 samples vs the test split, gdjax's classifier
features; mean ± sd over seeds 0-2): FID 366.5 ± 24, KID 7.09 ± 0.34,
precision 0.815 ± 0.015, recall 0.060 ± 0.004, classifier score 2.68 ± 0.18.
No better than the non-saturating DCGAN at this budget, and less stable
across seeds. Measured by `benchmarks/gan_quality.py --seeds 0 1 2`.
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.gan_config()
  config.gan_loss = "least_squares"
  return config
