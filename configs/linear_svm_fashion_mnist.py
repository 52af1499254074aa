"""Linear SVM on Fashion-MNIST: a linear model, Crammer-Singer hinge loss, L2.

Run:
  gdjax train --config configs/linear_svm_fashion_mnist.py --workdir workdirs/linear_svm
  gdjax eval --workdir workdirs/linear_svm

Takes: TBD
Reaches: TBD
"""

from gdjax import config_defaults


def get_config():
  config = config_defaults.classifier_config()
  config.model = dict(name="linear")
  config.loss = "crammer_singer_hinge"
  config.l2_regularization = 1e-4
  config.batch_size = 256
  config.total_steps = 6000
  config.optimizer.learning_rate = 1e-3
  config.eval_every_steps = 1000
  config.checkpoint.every_steps = 1000
  return config
