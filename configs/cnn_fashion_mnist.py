"""CNN classifier on Fashion-MNIST.

Run:
  gdjax train --config configs/cnn_fashion_mnist.py --workdir workdirs/cnn
  gdjax eval --workdir workdirs/cnn

Takes: about TBD minutes on a 2-core CPU.
Reaches: TBD test accuracy.
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.classifier_config()
  config.model = dict(name="cnn", stage_widths=(16, 32), convs_per_stage=2, dense_width=256, dropout_rate=0.3)
  config.augment.flip = True
  config.augment.max_shift = 2
  config.total_steps = 8000
  return config
