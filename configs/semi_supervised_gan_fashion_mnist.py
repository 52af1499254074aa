"""Semi-supervised GAN on Fashion-MNIST from 100 labels (Salimans et al. 2016, feature matching).

Run:
  gdjax train --config configs/semi_supervised_gan_fashion_mnist.py --workdir workdirs/ssl_gan
  gdjax eval --workdir workdirs/ssl_gan --checkpoint best --split test   # test accuracy, FID, class coverage
  gdjax predict --workdir workdirs/ssl_gan --images images.npy --out predictions.json

Protocol: 100 labelled images (10 per class) of train[:54000], chosen by
`dataset.labelled_seed`; all 54,000 images, without labels, feed the
unlabelled stream. The discriminator has 10 class logits and scores
"real" by their logsumexp; the generator learns by feature matching. The
best checkpoint is kept by accuracy on 500 labelled validation images
(train[54000:54500]); the test split only reports. Other label counts:
`--config.dataset.labelled_size=250` (and 500, 1000); the baseline on the
same labels is configs/semi_supervised_baseline_fashion_mnist.py.

Takes and reaches: see docs/generators_teach_classifiers.md, "Semi-supervised GAN".
"""

from gdjax.tasks import semi_supervised_gan


def get_config():
  return semi_supervised_gan.default_config()
