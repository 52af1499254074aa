"""The default DCGAN recipe trained twice as long: gdjax's long GAN config.

Run:
  gdjax train --config configs/dcgan_long_fashion_mnist.py --workdir workdirs/dcgan_long
  gdjax eval --workdir workdirs/dcgan_long --checkpoint best
  gdjax sweep --sweep configs/sweeps/gan_long.py --out workdirs/sweeps/gan_long   # seeds 0, 1, 2

The model, loss and optimizers of configs/dcgan_fashion_mnist.py (batch norm
in G and D, non-saturating loss, Adam 4e-4 for G and D, batch 64, EMA
generator), 10,000 steps instead of 5,000, evaluated against the validation
split every 2,000 steps; the best checkpoint is kept by validation FID.

Takes and reaches: docs/gan_recipes.md, "The long config" (three seeds,
next to the pinned PyTorch reference at 20,000 steps).
"""

from pathlib import Path

from gdjax.sweep.plan import load_config

_DEFAULT = Path(__file__).resolve().parent / "dcgan_fashion_mnist.py"


def get_config():
  config = load_config(_DEFAULT)  # The default config file, as `gdjax train` reads it.
  config.total_steps = 10_000
  config.eval_every_steps = 2000
  config.checkpoint.every_steps = 2000
  return config
