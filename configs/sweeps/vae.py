"""VAE benchmark: configs/vae_fashion_mnist.py over seeds 0, 1 and 2.

Each run trains the MLP VAE for 20,000 steps, keeps its best checkpoint by
the k = 100 importance-weighted bound on the validation split (the last
6,000 training images) and is then evaluated once on the test split: the
ELBO and log p(x) with k = 5,000 on the first 2,000 dynamically binarised
test images (each binarised once with seed 0; the whole test split costs
five times as much, so the full-split figure is measured once, on seed 0,
as docs/results.md shows), and FID, KID, precision, recall and class
coverage of 10,000 samples (decoder means) in the feature space of gdjax's
Fashion-MNIST classifier, as for the GANs in configs/sweeps/gans.py.

Run:
  gdjax sweep --sweep configs/sweeps/vae.py --out workdirs/sweeps/vae

Results: workdirs/sweeps/vae/results.md; the table is documented in
docs/results.md, "VAE".
"""


def get_sweep():
  return dict(
    configs=("vae_fashion_mnist",),
    seeds=(0, 1, 2),
    overrides={"evals.likelihood_k5000.num_examples": 2000},
    report=(
      "likelihood_k5000/negative_log_likelihood",
      "likelihood_k5000/elbo",
      "quality/fid",
      "quality/kid",
      "quality/precision",
      "quality/recall",
      "coverage/min_class_share",
      "coverage/normalized_class_entropy",
    ),
  )
