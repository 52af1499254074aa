"""MLP classifier on Fashion-MNIST.

Run:
  gdjax train --config configs/mlp_fashion_mnist.py --workdir workdirs/mlp
  gdjax eval --workdir workdirs/mlp --checkpoint best

Model: 784 -> 512 -> 256 -> 10, ReLU, dropout 0.3, random horizontal flips;
Adam 1e-3 with cosine decay, batch 128, 12,000 steps (28 epochs of 54,000 images).

Takes: about 1.5 minutes on the 2-core CPU.
Reaches: docs/results.md, "Classifiers" (made by
`gdjax sweep --sweep configs/sweeps/classifiers.py`).
"""

from gdjax.tasks import classifier


def get_config():
  config = classifier.default_config()
  config.model = dict(name="mlp", hidden_sizes=(512, 256), dropout_rate=0.3)
  config.augment.flip = True
  config.total_steps = 12000
  config.eval_every_steps = 2000
  # Every 4,000 steps (about 17 s of training): at 2,000 a save cost 5.0 % of step time.
  config.checkpoint.every_steps = 4000
  return config
