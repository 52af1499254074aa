"""Input pipelines (TFDS), the local Fashion-MNIST builder, class-balanced subsets and text as bag-of-words."""

from gdjax.data.pipeline import (
  check_training_plan,
  eval_batches,
  get_builder,
  input_shape,
  load_split,
  load_training_examples,
  num_classes,
  num_examples,
  pad_batch,
  train_batches,
)
from gdjax.data.subsets import class_balanced_subset

__all__ = [
  "check_training_plan",
  "class_balanced_subset",
  "eval_batches",
  "get_builder",
  "input_shape",
  "load_split",
  "load_training_examples",
  "num_classes",
  "num_examples",
  "pad_batch",
  "train_batches",
]
