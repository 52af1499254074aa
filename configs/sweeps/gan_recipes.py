"""Candidate recipes for the default GAN (`make run`), compared on validation FID.

Each candidate (configs/gan_recipes/ and configs/hinge_sn_fashion_mnist.py)
trains for the 3,000 steps the default had when they were compared;
its best checkpoint is kept by FID against the validation split (the last
6,000 training images) and its test figures are reported only.

Run:
  gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes --parallel 2

Results: docs/gan_recipes.md.
"""


def get_sweep():
  return dict(
    configs=(
      "configs/gan_recipes/bn_d.py",
      "configs/hinge_sn_fashion_mnist.py",
      "configs/gan_recipes/bn_d_high_lr.py",
      "configs/gan_recipes/bn_d_short_ema.py",
    ),
    seeds=(0,),
    report=(
      "quality/fid",
      "quality/precision",
      "quality/recall",
      "coverage/min_class_share",
      "coverage/normalized_class_entropy",
    ),
  )
