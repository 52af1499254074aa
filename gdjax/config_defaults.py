"""Config pieces shared by every task's base config.

Each task module has a `default_config()` built from these; the files in
`configs/` start from it and change what their experiment changes.
"""

from __future__ import annotations

import ml_collections


def fashion_mnist_dataset() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      name="fashion_mnist",
      data_dir="",  # TFDS data_dir, e.g. gs://bucket/tfds; "" means TFDS's default.
      local_dir="",  # IDX files; "" means $GDJAX_FASHION_MNIST_DIR, else Debian's directory.
      # The last 6,000 training images are held out for validation: the
      # best checkpoint and every tuning choice are made on them, never on `test`.
      train_split="train[:54000]",
      eval_split="train[54000:]",
      # Hold the training split in host memory and shuffle it with NumPy;
      # False streams it through tf.data (shuffle_buffer_size, cache).
      in_memory=True,
      shuffle_buffer_size=54_000,
      cache=True,
      # tf.data's own thread pool; 0 means TensorFlow's default (one per core).
      # Small images need little, and 2 leaves the cores to the train step.
      threads=2,
      # In memory: train on a class-balanced subset of this many training
      # examples (0: all), drawn under subset_seed (the run's seed unless set).
      subset_size=0,
      subset_seed=0,
      # A trained conditional generator's workdir ("" = off): a classifier then
      # trains on its samples too (gdjax/generated_data.py,
      # docs/generators_teach_classifiers.md). generated_fraction: the share of
      # each batch it draws (0.5: real:generated 1:1; 1.0: generated only, the
      # Classification Accuracy Score). generated_mode: "fixed", a pool with as
      # many images per class as the real training examples, shuffled per
      # epoch; or "regenerate", fresh images every step. Its EMA weights, at
      # its "best" (by its own validation metric) or "latest" checkpoint;
      # generator_seed is the run's seed unless set.
      generator_workdir="",
      generator_checkpoint="best",
      generated_fraction=0.5,
      generated_mode="fixed",
      generator_seed=0,
    )
  )


def add_training_options(config: ml_collections.ConfigDict) -> None:
  """How the loop runs the step, the same for every task."""
  config.seed = 0
  if "dataset" in config:  # The data's own draws follow the seed unless set (identity: setting them leaves it alone).
    for field in ("subset_seed", "generator_seed", "labelled_seed"):
      if field in config.dataset:
        config.dataset[field] = config.get_ref("seed").identity()
  # "jit": one program over the device mesh, XLA inserts the gradient
  # all-reduce. "pmap": the task's step per device under jax.pmap, with
  # gradients, batch statistics and metrics averaged by lax.pmean.
  config.parallelism = "jit"
  # False: a NaN or Inf in the loss, gradient norms or new state stops the run,
  # naming the step and metric; the last good checkpoint is kept. True: such a
  # step's update is discarded on the device and counted in `skipped_steps`.
  config.skip_nonfinite_steps = False
  # "bfloat16": mixed precision. Activations, matmuls and convolutions in
  # bfloat16; parameters, optimizer state, batch-norm statistics and losses
  # in float32. Fast on TPUs and recent GPUs; XLA:CPU emulates it, slowly.
  config.compute_dtype = "float32"
  config.log_every_steps = 50
  config.progress_bar = True
  # Written by the loop from the dataset: the image shape the model was built for.
  config.input_shape = ()


def checkpoint_options(*, every_steps: int, best_metric: str, best_mode: str) -> ml_collections.ConfigDict:
  """Last `keep_last` checkpoints, plus the best by `best_metric` (an entry of `config.evals`, "<name>/<metric>")."""
  return ml_collections.ConfigDict(
    dict(every_steps=every_steps, keep_last=3, keep_best=True, best_metric=best_metric, best_mode=best_mode)
  )


def evaluation(config: ml_collections.ConfigDict, evaluator: str, **options) -> ml_collections.ConfigDict:
  """One entry of `config.evals`: the evaluator module `gdjax/evaluators/<evaluator>.py` and its options.

  Its cadence follows `config.eval_every_steps` unless the entry's own
  `every_steps` is set. Pass shared options as `config.get_ref(...).identity()`:
  a derived reference follows the shared field until this entry's value is
  overridden, and overriding it changes no other entry. Every entry also runs
  at the last step.
  """
  entry = ml_collections.ConfigDict({"type": evaluator, "every_steps": config.get_ref("eval_every_steps").identity()})
  entry.update(options)
  return entry
