"""Base configs that the files in `configs/` start from and change.

Config files live outside the package and import these, so that every
experiment states only what differs from the base.
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
    )
  )


def add_training_options(config: ml_collections.ConfigDict) -> None:
  """How the loop runs the step, the same for every task."""
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


def classifier_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.task = "classifier"
  config.seed = 0
  config.dataset = fashion_mnist_dataset()
  config.model = ml_collections.ConfigDict(dict(name="cnn"))
  config.loss = "cross_entropy"
  config.label_smoothing = 0.0
  config.l2_regularization = 0.0
  config.augment = ml_collections.ConfigDict(dict(flip=False, max_shift=0))
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.total_steps = 1000
  config.optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3))
  config.schedule = ml_collections.ConfigDict(dict(name="cosine", warmup_steps=0, end_fraction=0.0))
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.checkpoint = ml_collections.ConfigDict(dict(every_steps=500, keep_last=3, keep_best=True))
  add_training_options(config)
  config.progress_bar = True
  # Written by the loop from the dataset: the image shape the model was built for.
  config.input_shape = ()
  return config


def gan_config() -> ml_collections.ConfigDict:
  """A DCGAN with the non-saturating loss, Adam 2e-4, beta1 0.5 (Radford et al. 2016)."""
  config = ml_collections.ConfigDict()
  config.task = "gan"
  config.seed = 0
  config.dataset = fashion_mnist_dataset()
  # GANs train on all 60,000 training images; FID compares with the test split.
  config.dataset.train_split = "train"
  config.dataset.eval_split = "test"
  config.dataset.shuffle_buffer_size = 60_000
  # conv_transpose / conv choose how the (transposed) convolutions are
  # computed, never what: "auto" is the form measured fastest on the backend
  # (gdjax/models/layers.py); "xla" is Flax's own.
  config.model = ml_collections.ConfigDict(
    dict(
      generator=dict(name="dcgan_generator", width=64, use_batch_norm=True, conv_transpose="auto"),
      discriminator=dict(name="dcgan_discriminator", width=64, spectral_norm=False, conv="auto"),
    )
  )
  config.noise_dim = 100
  config.conditional = False
  config.num_classes = 10
  config.gan_loss = "non_saturating"
  config.penalty = ml_collections.ConfigDict(dict(name="none", weight=0.0))
  config.l2_weight_decay = 0.0
  config.n_critic = 1
  config.ema_decay = 0.999
  # Decay min(ema_decay, (1 + t) / (10 + t)) at update t, so early EMAs are not mostly init.
  config.ema_warmup = True
  config.batch_size = 64
  config.eval_batch_size = 500
  config.total_steps = 3000
  config.generator_optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999))
  config.discriminator_optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999))
  config.schedule = ml_collections.ConfigDict(dict(name="constant"))
  config.log_every_steps = 50
  config.eval_every_steps = 1000
  config.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep_last=3, keep_best=True))
  add_training_options(config)
  config.evaluation = ml_collections.ConfigDict(
    dict(
      feature_network="fashion_mnist_cnn",
      feature_network_dir="",  # "" means the copy shipped in gdjax/assets.
      reference_split="test",
      num_samples=10_000,
      batch_size=500,
      use_ema=True,
      kid_subsets=100,
      kid_subset_size=1000,
      precision_recall_samples=5000,
      precision_recall_k=3,
      grid_size=100,
    )
  )
  config.progress_bar = True
  config.input_shape = ()
  return config
