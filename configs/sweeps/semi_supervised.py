"""Semi-supervised GAN against its supervised-only baseline: 100 labels by default, seeds 0, 1 and 2.

Compares configs/semi_supervised_gan_fashion_mnist.py (Salimans et al.'s
feature-matching GAN, the discriminator is the classifier) with
configs/semi_supervised_baseline_fashion_mnist.py (the same discriminator on
the labelled cross-entropy alone), both for 10,000 steps. A seed changes the
run's randomness and the labelled subset: `dataset.labelled_seed` follows
the run's seed, so seeds 0, 1 and 2 are three different class-balanced draws
of 10 images per class from train[:54000]. Each run keeps its best checkpoint
by accuracy on 500 labelled validation images (train[54000:54500]); the test
split only reports.

Run (100 labels), then the other label counts with one flag:
  gdjax sweep --sweep configs/sweeps/semi_supervised.py --out workdirs/sweeps/ssl_100 --parallel 2
  gdjax sweep --sweep configs/sweeps/semi_supervised.py --out workdirs/sweeps/ssl_250 --parallel 2 \
    --set dataset.labelled_size=250 [--seeds 0]

Takes: 12-24 min per GAN run and 7-11 min per baseline run with two or three
runs sharing 2 CPU cores (AMD EPYC, 2026-12-01).
Results: docs/generators_teach_classifiers.md, "Semi-supervised GAN".
"""


def get_sweep():
  return dict(
    configs=("semi_supervised_gan_fashion_mnist", "semi_supervised_baseline_fashion_mnist"),
    seeds=(0, 1, 2),
    # Half the configs' 20,000 steps: the 20,000-step run's validation accuracy
    # stopped rising after a few thousand steps (docs/generators_teach_classifiers.md).
    overrides={"total_steps": 10_000},
    report=(
      "classification/accuracy",
      "classification/cross_entropy",
      "quality/fid",
      "coverage/min_class_share",
    ),
  )
