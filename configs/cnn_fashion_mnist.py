"""CNN classifier on Fashion-MNIST.

Run:
  gdjax train --config configs/cnn_fashion_mnist.py --workdir workdirs/cnn
  gdjax eval --workdir workdirs/cnn --checkpoint best

Two stages of two 3x3 conv-BN-ReLU blocks (16, then 32 channels), a 2x2
max-pool after each, a 256-unit dense layer, dropout 0.2 (0.42M
parameters); Adam 1e-3 with cosine decay, batch 128, random flips, 8,500
steps. Hyperparameters were chosen on the validation split (the last 6,000
training images).

Takes: about 10-15 minutes on the 2-core CPU.
Reaches: docs/results.md, "Classifiers" (made by
`gdjax sweep --sweep configs/sweeps/classifiers.py`).

A 7,500-step run of this config is gdjax's feature network for FID, KID and
class coverage (gdjax/assets/fashion_mnist_cnn.*; the command is in its JSON file).
"""

from gdjax.tasks import classifier


def get_config():
  config = classifier.default_config()
  # Two stages of two 3x3 conv-BN-ReLU blocks (16, then 32 channels), 2x2 max-pool
  # after each, a 256-unit dense layer, dropout 0.2: 0.42M parameters.
  config.model = dict(name="cnn", stage_widths=(16, 32), convs_per_stage=2, dense_width=256, dropout_rate=0.2)
  # Random horizontal flips; random shifts cost validation accuracy at this
  # training length (0.928 against 0.937).
  config.augment.flip = True
  config.total_steps = 8500  # About 20 epochs of the 54,000 training images at batch 128.
  config.eval_every_steps = 1700
  config.checkpoint.every_steps = 1700
  return config
