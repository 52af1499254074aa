"""The default GAN (configs/dcgan_fashion_mnist.py, `make run`'s) over seeds 0, 1 and 2.

Each run trains 5,000 steps, keeps its best checkpoint by FID against the
validation split (the last 6,000 training images) and is then evaluated
once on the test split (EMA generator, 10,000 samples, gdjax's
Fashion-MNIST classifier features). Seed 0 is `make run`'s run.

Run (one run at a time, so that each has the machine, as `make run` does):
  gdjax sweep --sweep configs/sweeps/gan_default.py --out workdirs/sweeps/gan_default

Results: docs/gan_recipes.md, "The default".
"""


def get_sweep():
  return dict(
    configs=("dcgan_fashion_mnist",),
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
