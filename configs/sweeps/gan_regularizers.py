"""DiffAugment, bCR and LeCam, each alone, on the seed recipe and on the default GAN.

Two steps in one table: the seed recipe (`configs/gan_recipes/seed_recipe.py`:
plain D, Adam 2e-4, 3,000 steps) and the default (`configs/dcgan_fashion_mnist.py`:
batch norm in D, Adam 4e-4, 5,000 steps), each without a regulariser and
with each of the three at its published defaults (gdjax/gan_regularizers.py),
3 seeds. Every run keeps its best checkpoint by validation FID; the test
figures are reported only. With two runs at a time on a 2-core Intel Xeon,
the 18 regularised runs took 2 h 21 min (2026-11-30/12-01; bCR runs take
about twice as long as the others). The 6 runs without a regulariser take
about 6 (seed recipe) and 10 (default) minutes each, one at a time.

Run:
  gdjax sweep --sweep configs/sweeps/gan_regularizers.py --out workdirs/sweeps/gan_regularizers --parallel 2

Results: docs/gan_recipes.md ("Regularisers").
"""


def get_sweep():
  return dict(
    configs=(
      "configs/gan_recipes/seed_recipe.py",
      "configs/dcgan_fashion_mnist.py",
    ),
    grid={"regularizers": ("", "diffaugment", "bcr", "lecam")},
    seeds=(0, 1, 2),
    report=(
      "quality/fid",
      "quality/precision",
      "quality/recall",
      "coverage/min_class_share",
      "coverage/normalized_class_entropy",
    ),
  )
