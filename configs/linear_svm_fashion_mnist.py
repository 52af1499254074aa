"""Linear SVM on Fashion-MNIST: a linear model, Crammer-Singer hinge loss, L2.

Run:
  gdjax train --config configs/linear_svm_fashion_mnist.py --workdir workdirs/linear_svm
  gdjax eval --workdir workdirs/linear_svm --checkpoint best

Model: scores = W x + b on the 784 pixels scaled to [-1, 1]; multiclass hinge
loss of Crammer & Singer plus 1e-4 * |W|^2 / 2; Adam 1e-3 with cosine decay,
batch 256, 6,000 steps (28 epochs of 54,000 images). One-vs-rest instead:
--config.loss=one_vs_rest_hinge.

Takes: well under a minute on the 2-core CPU.
Reaches: docs/results.md, "Classifiers" (made by
`gdjax sweep --sweep configs/sweeps/classifiers.py`).
"""

from gdjax.tasks import classifier


def get_config():
  config = classifier.default_config()
  config.model = dict(name="linear")
  config.loss = "crammer_singer_hinge"
  config.l2_regularization = 1e-4
  config.batch_size = 256
  config.total_steps = 6000
  config.optimizer.learning_rate = 1e-3
  config.eval_every_steps = 1000
  # One save, at the end: the whole run takes seconds, and a save every 3,000 steps (about 2 s
  # of training) cost 5-11 % of step time (python -m benchmarks.checkpoint_overhead).
  config.checkpoint.every_steps = 6000
  return config
