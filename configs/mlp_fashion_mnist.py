"""MLP classifier on Fashion-MNIST.

Run:
  gdjax train --config configs/mlp_fashion_mnist.py --workdir workdirs/mlp
  gdjax eval --workdir workdirs/mlp

Takes: TBD
Reaches: TBD
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.classifier_config()
  config.model = dict(name="mlp", hidden_sizes=(512, 256), dropout_rate=0.3)
  config.augment.flip = True
  config.total_steps = 12000
  config.eval_every_steps = 2000
  config.checkpoint.every_steps = 2000
  return config
