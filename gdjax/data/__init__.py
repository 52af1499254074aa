"""Input pipelines (TFDS) and the local Fashion-MNIST builder."""

from gdjax.data.pipeline import eval_batches, get_builder, load_split, num_examples, pad_batch, train_batches

__all__ = ["eval_batches", "get_builder", "load_split", "num_examples", "pad_batch", "train_batches"]
