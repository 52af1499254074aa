"""Candidate recipes for the default GAN (`make run`), compared on validation FID.

Each candidate in configs/gan_recipes/ trains for the default's step budget;
its best checkpoint is kept by FID against the validation split (the last
6,000 training images) and its test figures are reported only.

Run:
  gdjax sweep --sweep configs/sweeps/gan_recipes.py --out workdirs/sweeps/gan_recipes --parallel 2

Results: docs/gan_recipes.md.
"""


def get_sweep():
  return dict(
    configs=tuple(
      f"configs/gan_recipes/{name}.py" for name in ("bn_d", "sn_hinge_ttur", "bn_d_high_lr", "bn_d_short_ema")
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
