"""CNN classifier trained only on a conditional generator's samples: the Classification Accuracy Score.

Run (the generator first, then the classifier on its samples, then its
accuracy on the real test split, which is the CAS):
  gdjax train --config configs/cdcgan_fashion_mnist.py --workdir workdirs/cdcgan
  gdjax train --config configs/cas_fashion_mnist.py --workdir workdirs/cas \
      --config.dataset.generator_workdir=workdirs/cdcgan
  gdjax eval --workdir workdirs/cas --split test --checkpoint best
or all of it, with the same CNN trained on the real images beside it and
their ratio, over seeds:
  gdjax cas --generator_workdir workdirs/cdcgan --out workdirs/cas_cdcgan --seeds 0,1,2

configs/cnn_fashion_mnist.py as it is (same steps, batch, optimizer,
augmentation), except that every training image comes from the generator's
EMA weights at its best checkpoint (by its validation FID): a pool as large as
train[:54000], with as many images of each class, shuffled per epoch
(`dataset.generated_mode="regenerate"` draws fresh ones every step instead).
The best checkpoint is kept by accuracy on the real validation images (the
last 6,000 training images), as for the real-data CNN, and the test split
only reports. See docs/generators_teach_classifiers.md.

Takes: about as long as configs/cnn_fashion_mnist.py (10-15 minutes on the
2-core CPU), plus under a minute to generate the pool (not measured yet).
Reaches: not measured yet.

References:
  Ravuri & Vinyals, "Classification Accuracy Score for Conditional Generative
  Models", NeurIPS 2019.
"""

import importlib.util
from pathlib import Path


def get_config():
  # The CNN config by path: config files are not a package.
  spec = importlib.util.spec_from_file_location("cnn_fashion_mnist", Path(__file__).with_name("cnn_fashion_mnist.py"))
  cnn = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(cnn)
  config = cnn.get_config()
  config.dataset.generator_workdir = "workdirs/cdcgan"  # Trained by configs/cdcgan_fashion_mnist.py's command.
  config.dataset.generator_checkpoint = "best"
  config.dataset.generated_fraction = 1.0  # Generated images only.
  config.dataset.generated_mode = "fixed"
  return config
