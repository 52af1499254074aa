"""The semi-supervised GAN's baseline: its discriminator trained on the labelled images alone.

Run:
  gdjax train --config configs/semi_supervised_baseline_fashion_mnist.py --workdir workdirs/ssl_baseline
  gdjax eval --workdir workdirs/ssl_baseline --checkpoint best --split test --evals classification

The same network, labelled subset (`dataset.labelled_size`,
`dataset.labelled_seed`), flip and translate augmentation, optimizer,
steps and batch sizes as configs/semi_supervised_gan_fashion_mnist.py, on the
labelled cross-entropy only: no generator update and no unlabelled term.
The best checkpoint is kept by accuracy on the same 500 labelled validation
images; the test split only reports.

Takes and reaches: see docs/generators_teach_classifiers.md, "Semi-supervised GAN".
"""

from gdjax.tasks import semi_supervised_gan


def get_config():
  config = semi_supervised_gan.default_config()
  config.supervised_only = True
  # The generator is never trained: no sample evaluations.
  for name in ("quality", "coverage", "grid"):
    del config.evals[name]
  return config
