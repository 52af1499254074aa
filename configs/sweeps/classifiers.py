"""Classifier benchmark: CNN, MLP and linear SVM on Fashion-MNIST, each config as it is, seed 0.

Compares: configs/cnn_fashion_mnist.py, configs/mlp_fashion_mnist.py and
configs/linear_svm_fashion_mnist.py at their own number of steps. Each run
keeps its best checkpoint by validation accuracy (the last 6,000 training
images) and is then evaluated once on the test split.

Run:
  gdjax sweep --sweep configs/sweeps/classifiers.py --out workdirs/sweeps/classifiers
  (or `python -m gdjax.sweep ...` with the same flags)

Takes: about 20 minutes on the idle 2-core CPU (CNN 10-15 min, MLP
1.5, linear SVM 0.5); 49 minutes on 2026-11-30 while a GAN sweep shared
the cores. More seeds: --seeds 0,1,2.

Results: workdirs/sweeps/classifiers/results.md; the table is documented in
docs/results.md.
"""


def get_sweep():
  return dict(
    configs=("cnn_fashion_mnist", "mlp_fashion_mnist", "linear_svm_fashion_mnist"),
    seeds=(0,),
    report=("classification/accuracy", "classification/cross_entropy"),
  )
