"""GAN benchmark: MLP GAN, conditional DCGAN and DCGAN on Fashion-MNIST, seeds 0, 1 and 2.

Compares: configs/mlp_gan_fashion_mnist.py (10,000 steps),
configs/cdcgan_fashion_mnist.py and configs/dcgan_fashion_mnist.py (3,000
steps each), as they are, over three seeds: 9 runs. Each run keeps its best
checkpoint by FID against the validation split (the last 6,000 training
images) and is then evaluated once on the test split (EMA generator, 10,000
samples, gdjax's Fashion-MNIST classifier features), reported as mean ± sd
over the seeds.

Run:
  gdjax sweep --sweep configs/sweeps/gans.py --out workdirs/sweeps/gans --parallel 2

Takes: 76 minutes with --parallel 2 on the 2-core Intel Xeon, 2026-11-30,
with other work sharing the cores part of the time.

Results: workdirs/sweeps/gans/results.md; the table is documented in
docs/results.md.
"""


def get_sweep():
  return dict(
    configs=("mlp_gan_fashion_mnist", "cdcgan_fashion_mnist", "dcgan_fashion_mnist"),
    seeds=(0, 1, 2),
    report=(
      "quality/fid",
      "quality/kid",
      "quality/precision",
      "quality/recall",
      "quality/classifier_score",
      "coverage/min_class_share",
      "coverage/intended_class_accuracy",
    ),
  )
