"""Conditional DCGAN on the default GAN's recipe, 10,000 steps: gdjax's generator for the CAS.

Run:
  gdjax train --config configs/cdcgan_long_fashion_mnist.py --workdir workdirs/cdcgan_long
  gdjax eval --workdir workdirs/cdcgan_long --checkpoint best
  gdjax cas --generator_workdir workdirs/cdcgan_long --out workdirs/cas/cdcgan_long --seeds 0,1,2

configs/dcgan_long_fashion_mnist.py (batch norm in G and D, non-saturating
loss, Adam 4e-4 for G and D, batch 64, EMA generator, 10,000 steps,
evaluated every 2,000) made class-conditional as
configs/cdcgan_fashion_mnist.py is: a label embedding concatenated to G's
noise and a projection term <embed(y), phi(x)> in D's score (Miyato & Koyama
2018). The best checkpoint is kept by FID against the validation split.

Takes and reaches: docs/generators_teach_classifiers.md, "Classification
Accuracy Score" (training time, validation FID and its CAS).
"""

from pathlib import Path

from gdjax.sweep.plan import load_config

_LONG = Path(__file__).resolve().parent / "dcgan_long_fashion_mnist.py"


def get_config():
  config = load_config(_LONG)  # The long unconditional config file, as `gdjax train` reads it.
  config.conditional = True
  return config
