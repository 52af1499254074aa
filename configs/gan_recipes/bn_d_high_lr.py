"""Recipe candidate: batch norm in D, G and D at Adam 4e-4 (twice the seed recipe's rate).

The default config (configs/dcgan_fashion_mnist.py) at the candidates'
3,000-step budget.

Run: gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes
Reaches: docs/gan_recipes.md.
"""

from pathlib import Path

from gdjax.sweep.plan import load_config

_DEFAULT = Path(__file__).resolve().parents[1] / "dcgan_fashion_mnist.py"


def get_config():
  config = load_config(_DEFAULT)  # The default config file, as `gdjax train` reads it.
  config.total_steps = 3000
  return config
