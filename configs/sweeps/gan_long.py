"""The long GAN config (configs/dcgan_long_fashion_mnist.py) over seeds 0, 1 and 2.

Each run trains 10,000 steps, keeps its best checkpoint by FID against the
validation split (the last 6,000 training images) and is then evaluated
once on the test split (EMA generator, 10,000 samples, gdjax's
Fashion-MNIST classifier features).

Run:
  gdjax sweep --sweep configs/sweeps/gan_long.py --out workdirs/sweeps/gan_long

Results: docs/gan_recipes.md, "The long config".
"""


def get_sweep():
  return dict(
    configs=("dcgan_long_fashion_mnist",),
    seeds=(0, 1, 2),
    report=(
      "quality/fid",
      "quality/kid",
      "quality/precision",
      "quality/recall",
      "coverage/min_class_share",
      "coverage/normalized_class_entropy",
    ),
  )
