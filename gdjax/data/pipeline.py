"""TFDS input pipelines: any TFDS image (or, as bag-of-words counts, text) dataset by name, split per JAX process.

Each process makes batches of `global_batch_size / process_count` examples.
In memory (the default, for datasets that fit in host memory) every process
holds the whole split and takes its own rows of each global batch, so the
global batches, and hence training, do not depend on the number of
processes. Streamed through tf.data, each process reads its own slice of the
split (`tfds.split_for_jax_process`) and shuffles it with the seed.
Images stay uint8 until the jitted step scales them to [-1, 1]
(`gdjax.samples.to_float`), so the host and the host-to-device link move a
quarter of the bytes. `gdjax.parallel` then assembles the per-process
batches into global arrays on the mesh.

The training order is a pure function of the seed: a run resumed at step `k`
skips the first `k` batches and sees exactly what an uninterrupted run sees.

Two options of the in-memory pipeline serve learning curves and closed-form
fits. `dataset.subset_size` trains on a class-balanced subset of the
training split (`subsets.class_balanced_subset`, drawn under
`dataset.subset_seed`). `dataset.single_pass` reads the training examples
exactly once, in `ceil(N / batch_size)` batches whose last one is padded,
each with a float `mask` (1 for a real example): what a sum of sufficient
statistics (naive Bayes) needs, where an endless shuffled stream would count
some examples twice and drop others. `dataset.labelled_size` makes a
semi-supervised run's two streams: each batch holds `image` rows of the
whole split without labels, and `labelled_image`/`labelled_label` rows
(`dataset.labelled_batch_size` of them) of a class-balanced subset drawn
under `dataset.labelled_seed` (the run's seed unless set), each stream in
its own seeded epochs.
`check_training_plan` refuses, before anything is written, a plan that does
not fit those options.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
from collections.abc import Iterator
from pathlib import Path

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from gdjax.data import fashion_mnist_local, subsets, text
from gdjax.errors import ConfigError, DatasetError


def preprocess(example: dict) -> dict:
  """Images stay uint8 (the step scales them to [-1, 1] on the device); labels become int32."""
  return {"image": example["image"], "label": tf.cast(example["label"], tf.int32)}


def get_builder(dataset_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """A prepared TFDS builder for `dataset_config.name`.

  For `fashion_mnist`, a local directory of IDX files (`local_dir`,
  `$GDJAX_FASHION_MNIST_DIR` or Debian's `/usr/share/datasets/fashion-mnist`)
  is preferred over TFDS's download, which needs the internet. With
  `dataset_config.text_feature` set, the builder is wrapped so that its
  examples are bag-of-words counts (`text.BagOfWordsBuilder`).
  """
  builder = _get_tfds_builder(dataset_config)
  if dataset_config.get("text_feature"):
    return text.BagOfWordsBuilder(
      builder,
      text_feature=dataset_config.text_feature,
      vocabulary_size=dataset_config.get("vocabulary_size", 0),
      train_split=dataset_config.train_split,
    )
  return builder


def input_shape(builder: tfds.core.DatasetBuilder, dataset_config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The shape of one model input: the image's, or `(vocabulary_size,)` for a text dataset."""
  if dataset_config.get("text_feature"):
    return (int(dataset_config.vocabulary_size),)
  return tuple(builder.info.features["image"].shape)


def num_classes(builder: tfds.core.DatasetBuilder) -> int:
  """How many classes the dataset's `label` feature has."""
  return int(builder.info.features["label"].num_classes)


def _get_tfds_builder(dataset_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  name, data_dir = dataset_config.name, dataset_config.get("data_dir") or None
  if name == "fashion_mnist":
    local_dir = dataset_config.get("local_dir") or fashion_mnist_local.default_local_dir()
    if not fashion_mnist_local.missing_files(local_dir):
      builder = fashion_mnist_local.FashionMnistLocal(data_dir=data_dir)
      if not builder.is_prepared():
        with _preparation_lock(builder):  # Several runs of a sweep may start on a fresh machine at once.
          builder = fashion_mnist_local.FashionMnistLocal(data_dir=data_dir)  # Prepared while we waited?
          if not builder.is_prepared():
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=local_dir))
      return builder
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ConfigError(
      f"TFDS has no dataset named {name!r}. Set --config.dataset.name to a TFDS "
      "dataset name such as 'fashion_mnist' or 'mnist'."
    ) from e
  if not builder.is_prepared():
    try:
      with _preparation_lock(builder):
        builder = tfds.builder(name, data_dir=data_dir)  # Prepared while we waited?
        if not builder.is_prepared():
          builder.download_and_prepare()
    except Exception as e:  # Any network or checksum failure ends here.
      hint = ""
      if name == "fashion_mnist":
        hint = (
          " Fashion-MNIST can also come from local IDX files: install them "
          "with `sudo apt-get install dataset-fashion-mnist` (they go to "
          f"{fashion_mnist_local.DEBIAN_DIR}), or point "
          f"${fashion_mnist_local.DIR_ENV_VAR} or --config.dataset.local_dir "
          "at a directory holding train-images-idx3-ubyte.gz, "
          "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
          "t10k-labels-idx1-ubyte.gz."
        )
      raise DatasetError(
        f"Dataset {name!r} is not prepared in {builder.data_dir_root} and "
        f"downloading it failed ({type(e).__name__}: {str(e)[:200]}). "
        "Prepare it on a machine with internet (`tfds build "
        f"{name}`) and copy it there, or set --config.dataset.data_dir to "
        f"where it is prepared.{hint}"
      ) from e
  return builder


@contextlib.contextmanager
def _preparation_lock(builder: tfds.core.DatasetBuilder):
  """Holds an exclusive `flock` beside the dataset's directory while one process prepares it.

  TFDS prepares into a temporary directory and renames it; two processes
  doing so at once make the second fail with FileExistsError. The lock is a
  file beside the dataset's directory, released by the OS if its holder dies.
  """
  root = Path(builder.data_dir_root)
  root.mkdir(parents=True, exist_ok=True)
  with open(root / f".{builder.name}.prepare.lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def num_examples(builder: tfds.core.DatasetBuilder, split: str) -> int:
  """Examples in `split` (TFDS slicing syntax allowed); clear error if it does not exist."""
  if not builder.info.splits:
    # No recorded split sizes (e.g. under `tfds.testing.mock_data`): count them.
    ds = builder.as_dataset(split=split, shuffle_files=False)
    return int(ds.reduce(0, lambda count, _: count + 1))
  try:
    return builder.info.splits[split].num_examples
  except (KeyError, ValueError) as e:
    raise ConfigError(
      f"Split {split!r} does not exist in {builder.name}; it has "
      f"{sorted(builder.info.splits)}. Use TFDS split syntax, e.g. 'train[:90%]'."
    ) from e


def _read_process_split(builder, split: str, *, shuffle_files: bool, seed: int):
  process_split = tfds.split_for_jax_process(split, drop_remainder=False)
  read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
  return builder.as_dataset(split=process_split, shuffle_files=shuffle_files, read_config=read_config)


def check_training_plan(
  builder: tfds.core.DatasetBuilder,
  dataset_config: ml_collections.ConfigDict,
  *,
  global_batch_size: int,
  total_steps: int,
) -> int:
  """Checks the training split and the subset and single-pass options against the run; returns N.

  N is the number of training examples: `dataset_config.subset_size` if
  set, else the size of the training split. With `single_pass`, training
  must take exactly `ceil(N / global_batch_size)` steps: fewer would leave
  examples out, and there is nothing to read after them. Raises ConfigError,
  saying what to set, before anything is written.
  """
  split = dataset_config.train_split
  split_size = num_examples(builder, split)  # Fails with a clear message on a bad split.
  subset_size = int(dataset_config.get("subset_size", 0) or 0)
  single_pass = bool(dataset_config.get("single_pass", False))
  for option, used in (("subset_size", subset_size), ("single_pass", single_pass)):
    if used and not dataset_config.get("in_memory", True):
      raise ConfigError(
        f"config.dataset.{option} needs the in-memory pipeline, which holds the whole split; set "
        "--config.dataset.in_memory=True."
      )
  if subset_size and not 0 < subset_size <= split_size:
    raise ConfigError(
      f"config.dataset.subset_size={subset_size}, but the training split {split!r} has {split_size} examples. "
      f"Set it between 1 and {split_size} (0 trains on the whole split)."
    )
  n = subset_size or split_size
  _check_labelled_subset(dataset_config, split, split_size)
  if single_pass:
    steps = math.ceil(n / global_batch_size)
    if total_steps != steps:
      what = "would leave examples out" if total_steps < steps else "would ask for batches after the last one"
      raise ConfigError(
        f"config.dataset.single_pass reads each of the {n} training examples exactly once, in batches of "
        f"{global_batch_size} (the last one padded): that is {steps} steps, and total_steps={total_steps} {what}. "
        f"Set --config.total_steps={steps}, or change batch_size."
      )
  return n


def _check_labelled_subset(dataset_config: ml_collections.ConfigDict, split: str, split_size: int) -> None:
  """A semi-supervised run's labelled subset must fit the split, and its batches the subset."""
  labelled_size = int(dataset_config.get("labelled_size", 0) or 0)
  if not labelled_size:
    return
  if not dataset_config.get("in_memory", True):
    raise ConfigError(
      "config.dataset.labelled_size needs the in-memory pipeline, which holds the whole split; set "
      "--config.dataset.in_memory=True."
    )
  if dataset_config.get("subset_size") or dataset_config.get("single_pass"):
    raise ConfigError(
      "config.dataset.labelled_size keeps the labels of a subset and trains on the whole split without them; it "
      "does not combine with subset_size or single_pass. Set --config.dataset.subset_size=0 and single_pass=False."
    )
  if not 1 <= labelled_size <= split_size:
    raise ConfigError(
      f"config.dataset.labelled_size={labelled_size}, but the training split {split!r} has {split_size} "
      f"examples. Set it between 1 and {split_size}."
    )
  labelled_batch_size = int(dataset_config.get("labelled_batch_size", 0) or 0)
  if not 1 <= labelled_batch_size <= labelled_size:
    raise ConfigError(
      f"config.dataset.labelled_batch_size={labelled_batch_size} must be between 1 and labelled_size="
      f"{labelled_size}: each step draws that many labelled examples, without repeats, from the subset."
    )
  _local_batch_size(labelled_batch_size)  # Divisible by the processes.


def train_batches(
  builder: tfds.core.DatasetBuilder,
  dataset_config: ml_collections.ConfigDict,
  *,
  global_batch_size: int,
  seed: int,
  start_step: int = 0,
) -> Iterator[dict]:
  """Endless, shuffled, per-process NumPy batches, starting at `start_step`.

  With `dataset_config.in_memory` (the default, for datasets that fit in host
  memory such as Fashion-MNIST) the process's split is read through TFDS once
  and each epoch is a seeded permutation of it, gathered with NumPy: several
  million examples/s, so even a linear model is never starved. Otherwise a
  streaming tf.data pipeline shuffles, batches and scales on the fly.
  Either way the order is a pure function of `seed` and the step.

  In memory, `dataset_config.subset_size` (with `subset_seed`) replaces the
  split by a class-balanced subset of it, and `dataset_config.single_pass`
  makes the batches one padded pass with a `mask` that then ends (see the
  module docstring); `check_training_plan` says whether a run fits them.

  Real data only: batches mixed with a conditional generator's samples
  (`dataset_config.generator_workdir`) come from
  `gdjax.generated_data.train_batches`, which calls this for its real rows.
  """
  if dataset_config.get("generator_workdir", ""):
    raise ConfigError(
      f"config.dataset.generator_workdir={dataset_config.generator_workdir!r}: gdjax.data.train_batches reads real "
      "data only. Draw mixed batches with gdjax.generated_data.train_batches (as `gdjax train` does), or set "
      "--config.dataset.generator_workdir=''."
    )
  local_batch_size = _local_batch_size(global_batch_size)
  split = dataset_config.train_split
  num_examples(builder, split)  # Fails early, with a clear message, on a bad split.
  if dataset_config.get("in_memory", True):
    return _in_memory_batches(builder, dataset_config, global_batch_size, seed, start_step)
  if dataset_config.get("subset_size") or dataset_config.get("single_pass"):
    raise ConfigError("config.dataset.subset_size and single_pass need --config.dataset.in_memory=True.")
  ds = _read_process_split(builder, split, shuffle_files=True, seed=seed)
  if dataset_config.get("cache", True):
    ds = ds.cache()
  ds = ds.shuffle(dataset_config.shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat()
  ds = ds.batch(local_batch_size, drop_remainder=True)
  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if start_step:
    ds = ds.skip(start_step)
  ds = ds.prefetch(tf.data.AUTOTUNE)
  return iter(tfds.as_numpy(ds.with_options(_pipeline_options(dataset_config))))


def load_split(builder: tfds.core.DatasetBuilder, split: str, *, whole: bool = False) -> dict:
  """This process's part of `split` (with `whole`, all of it) as uint8 images and int32 labels, in TFDS order.

  For a text dataset (`text.BagOfWordsBuilder`) the images are float32 word counts.
  """
  if whole:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  else:
    ds = _read_process_split(builder, split, shuffle_files=False, seed=0)
  arrays = {"image": [], "label": []}
  for chunk in tfds.as_numpy(ds.batch(10_000)):
    arrays["image"].append(chunk["image"])
    arrays["label"].append(chunk["label"].astype(np.int32))
  return {k: np.concatenate(v) for k, v in arrays.items()}


def load_training_examples(builder: tfds.core.DatasetBuilder, dataset_config: ml_collections.ConfigDict) -> dict:
  """The whole training split, or its class-balanced subset when `dataset_config.subset_size` is set."""
  arrays = load_split(builder, dataset_config.train_split, whole=True)
  subset_size = int(dataset_config.get("subset_size", 0) or 0)
  if subset_size:
    indices = subsets.class_balanced_subset(arrays["label"], subset_size, int(dataset_config.get("subset_seed", 0)))
    arrays = {k: v[indices] for k, v in arrays.items()}
  return arrays


def _in_memory_batches(builder, dataset_config, global_batch_size, seed, start_step) -> Iterator[dict]:
  """Global batches drawn from a seeded permutation of the whole split; this process gets its rows of each."""
  split = dataset_config.train_split
  arrays = load_training_examples(builder, dataset_config)
  # Process p feeds the p-th block of the batch's rows: its devices' part of
  # the `data` axis (`parallel.make_data_mesh` orders devices by process).
  rows = _process_rows(global_batch_size)
  if dataset_config.get("single_pass", False):
    yield from _single_pass(arrays, global_batch_size, seed, start_step, rows)
    return
  if len(arrays["label"]) < global_batch_size:
    raise ConfigError(
      f"Split {split!r} has {len(arrays['label'])} examples, fewer than one "
      f"batch ({global_batch_size}). Lower --config.batch_size or use a larger split."
    )
  batches = _shuffled_batches(arrays, global_batch_size, [seed], start_step, rows)
  if not dataset_config.get("labelled_size", 0):
    yield from batches
    return
  # Semi-supervised: the whole split without its labels, and beside it a stream of the labelled subset.
  labelled = load_labelled_subset(arrays, dataset_config)
  labelled_batch_size = int(dataset_config.labelled_batch_size)
  labelled_rows = _process_rows(labelled_batch_size)
  labelled_batches = _shuffled_batches(labelled, labelled_batch_size, [seed, 1], start_step, labelled_rows)
  for unlabelled_batch, labelled_batch in zip(batches, labelled_batches, strict=True):
    yield {
      "image": unlabelled_batch["image"],
      "labelled_image": labelled_batch["image"],
      "labelled_label": labelled_batch["label"],
    }


def _shuffled_batches(arrays: dict, global_batch_size: int, seed: list[int], start_step: int, rows: slice):
  """Endless global batches, each epoch a permutation drawn under `seed + [epoch]`; this process's `rows` of each."""
  steps_per_epoch = len(arrays["label"]) // global_batch_size
  epoch, offset = divmod(start_step, steps_per_epoch)
  while True:
    order = np.random.default_rng([*seed, epoch]).permutation(len(arrays["label"]))
    for step in range(offset, steps_per_epoch):
      indices = np.sort(order[step * global_batch_size : (step + 1) * global_batch_size])[
        rows
      ]  # Sorted: faster gathers.
      yield {"image": arrays["image"][indices], "label": arrays["label"][indices]}
    epoch, offset = epoch + 1, 0


def load_labelled_subset(arrays: dict, dataset_config: ml_collections.ConfigDict) -> dict:
  """The labelled examples of a semi-supervised run: `labelled_size` of them, class-balanced, drawn under `labelled_seed`.

  Depends only on the training split's labels and the two fields, never on
  the run's seed, devices or processes, so every run that names the same
  subset trains on the same labels.
  """
  indices = subsets.class_balanced_subset(
    arrays["label"], int(dataset_config.labelled_size), int(dataset_config.get("labelled_seed", 0))
  )
  return {k: v[indices] for k, v in arrays.items()}


def _process_rows(global_batch_size: int) -> slice:
  """This process's rows of a global batch: its devices' part of the `data` axis."""
  local_batch_size = _local_batch_size(global_batch_size)
  return slice(jax.process_index() * local_batch_size, (jax.process_index() + 1) * local_batch_size)


def _single_pass(arrays: dict, global_batch_size: int, seed: int, start_step: int, rows: slice) -> Iterator[dict]:
  """Every example exactly once, in a seeded order, in padded global batches with a `mask`; then the end."""
  n = len(arrays["label"])
  order = np.random.default_rng([seed, 0]).permutation(n)  # Epoch 0's order, as an endless run would start.
  for step in range(start_step, math.ceil(n / global_batch_size)):
    indices = np.sort(order[step * global_batch_size : (step + 1) * global_batch_size])
    batch = pad_batch({k: v[indices] for k, v in arrays.items()}, global_batch_size)
    yield {k: v[rows] for k, v in batch.items()}


def _pipeline_options(dataset_config) -> tf.data.Options:
  """Keeps tf.data's threads from competing with the train step for the host's cores.

  With `threads` > 0, tf.data gets its own pool of that size and runs each op
  single-threaded; 0 leaves TensorFlow's defaults (a thread per core).
  """
  options = tf.data.Options()
  options.deterministic = True
  threads = dataset_config.get("threads", 0)
  if threads:
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
  return options


def eval_batches(builder: tfds.core.DatasetBuilder, split: str, *, global_batch_size: int) -> Iterator[dict]:
  """One pass over `split`, in order, with a `mask` marking real examples.

  The last batch is padded, and every process yields the same number of
  batches (some possibly all padding), so collective eval steps line up
  across hosts.
  """
  local_batch_size = _local_batch_size(global_batch_size)
  per_process = math.ceil(num_examples(builder, split) / jax.process_count())
  num_batches = math.ceil(per_process / local_batch_size)
  ds = _read_process_split(builder, split, shuffle_files=False, seed=0)
  ds = ds.batch(local_batch_size).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  batches = iter(tfds.as_numpy(ds.prefetch(tf.data.AUTOTUNE)))
  template = None
  for _ in range(num_batches):
    batch = next(batches, None)
    if batch is None:  # This process ran out before the others.
      batch = {k: v[:0] for k, v in template.items()}
    template = batch
    yield pad_batch(batch, local_batch_size)


def pad_batch(batch: dict, size: int) -> dict:
  """Pads every array to `size` rows with zeros and adds a float `mask`."""
  n = len(next(iter(batch.values())))
  padded = {k: np.concatenate([v, np.zeros((size - n, *v.shape[1:]), v.dtype)]) for k, v in batch.items()}
  padded["mask"] = (np.arange(size) < n).astype(np.float32)
  return padded


def _local_batch_size(global_batch_size: int) -> int:
  if global_batch_size % jax.process_count():
    raise ConfigError(
      f"batch_size={global_batch_size} must be divisible by the number of processes ({jax.process_count()})."
    )
  return global_batch_size // jax.process_count()
