"""Recipe candidate: batch norm in D, G and D at Adam 4e-4 (twice the seed recipe's rate).

The default config (configs/dcgan_fashion_mnist.py) at the candidates'
3,000-step budget.

Run: gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes
Reaches: docs/gan_recipes.md.
"""

import importlib.util
from pathlib import Path

_DEFAULT = Path(__file__).resolve().parents[1] / "dcgan_fashion_mnist.py"


def get_config():
  spec = importlib.util.spec_from_file_location("gdjax_default_gan_config", _DEFAULT)
  default = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(default)
  config = default.get_config()
  config.total_steps = 3000
  return config
