"""Regularisation and learning-rate search for the semi-supervised GAN and its baseline, 100 labels.

Searches, for configs/semi_supervised_gan_fashion_mnist.py and
configs/semi_supervised_baseline_fashion_mnist.py alike, the discriminator's
learning rate (1e-3, 3e-3) and its Gaussian noise on the pixels (0.3, 0.5)
and after each hidden layer (0.5, 1.0): 8 settings per config, seed 0, 5,000
steps each (cosine decay over 5,000). The 100-label discriminator fits its
labels within a few thousand steps while its validation cross-entropy rises,
so the search is over the knobs that regularise it. Each config's setting is
chosen on accuracy on the 500 labelled validation images (train[54000:54500]);
the test split only reports.

Run:
  gdjax sweep --sweep configs/sweeps/semi_supervised_search.py --out workdirs/sweeps/ssl_search --parallel 2

Takes: 64 min for the 16 runs with --parallel 2 (AMD EPYC, 2 cores, 2026-12-03).
Reaches: 0.712-0.734 validation accuracy for every GAN setting, none near 0.80;
docs/generators_teach_classifiers.md, "Semi-supervised GAN".
"""


def get_sweep():
  return dict(
    configs=("semi_supervised_gan_fashion_mnist", "semi_supervised_baseline_fashion_mnist"),
    seeds=(0,),
    grid={
      "discriminator_optimizer.learning_rate": (1e-3, 3e-3),
      "model.discriminator.input_noise": (0.3, 0.5),
      "model.discriminator.hidden_noise": (0.5, 1.0),
    },
    overrides={"total_steps": 5_000},
    select=dict(metric="classification/accuracy", mode="max"),
    report=("classification/accuracy", "classification/cross_entropy"),
  )
