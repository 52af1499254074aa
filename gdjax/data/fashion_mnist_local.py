"""A TFDS builder for Fashion-MNIST from a local directory of IDX files.

TFDS's own `fashion_mnist` builder downloads the data and checks its bytes
against recorded checksums. Machines without internet cannot download, and
Debian's `dataset-fashion-mnist` package ships the same IDX files re-gzipped,
so their checksums differ. This builder reads those files instead and
prepares the same features as `fashion_mnist`: `image` (28, 28, 1) uint8 and
`label` with the ten class names.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DIR_ENV_VAR = "GDJAX_FASHION_MNIST_DIR"

# split name -> (images file, labels file), without the optional `.gz`.
SPLIT_FILES = {
  "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an IDX file (gzipped or not) into a NumPy array.

  The format: two zero bytes, a dtype code, the number of dimensions, one
  big-endian uint32 per dimension, then the values in C order.
  """
  path = Path(path)
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r}).")
  ndim = data[3]
  shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  offset = 4 + 4 * ndim
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(data) - offset != expected:
    raise ValueError(
      f"{path} is truncated or corrupt: its header promises shape {shape} "
      f"({expected} bytes) but {len(data) - offset} bytes follow."
    )
  return np.frombuffer(data, dtype, offset=offset).reshape(shape)


def find_idx_file(directory: str | os.PathLike, stem: str) -> Path | None:
  for name in (stem + ".gz", stem):
    candidate = Path(directory) / name
    if candidate.is_file():
      return candidate
  return None


def missing_files(directory: str | os.PathLike) -> list[str]:
  """The IDX files that `directory` lacks (empty if it has them all)."""
  return [stem for files in SPLIT_FILES.values() for stem in files if find_idx_file(directory, stem) is None]


def default_local_dir() -> str:
  """`$GDJAX_FASHION_MNIST_DIR` if set, else Debian's install location."""
  return os.environ.get(DIR_ENV_VAR, DEBIAN_DIR)


def load_split_arrays(directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Raw `(images [N, 28, 28] uint8, labels [N] uint8)` of one split."""
  images_stem, labels_stem = SPLIT_FILES[split]
  images = read_idx(find_idx_file(directory, images_stem))
  labels = read_idx(find_idx_file(directory, labels_stem))
  if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
    raise ValueError(
      f"{directory}: {split} images have shape {images.shape} and labels {labels.shape}; expected [N, 28, 28] and [N]."
    )
  return images, labels


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST prepared from local IDX files (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Same features as TFDS's fashion_mnist 3.0.1."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Put the four Fashion-MNIST IDX files (gzipped or not) in one directory:
  {", ".join(s for files in SPLIT_FILES.values() for s in files)}.
  On Debian or Ubuntu: `sudo apt-get install dataset-fashion-mnist` puts them
  in {DEBIAN_DIR}. Point gdjax elsewhere with ${DIR_ENV_VAR} or
  --config.dataset.local_dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description="Zalando's Fashion-MNIST, read from local IDX files.",
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=(28, 28, 1)),
          "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
        }
      ),
      supervised_keys=("image", "label"),
      homepage="https://github.com/zalandoresearch/fashion-mnist",
    )

  def _split_generators(self, dl_manager):
    directory = dl_manager.manual_dir
    return {split: self._generate_examples(directory, split) for split in SPLIT_FILES}

  def _generate_examples(self, directory, split):
    images, labels = load_split_arrays(directory, split)
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {"image": image[..., None], "label": int(label)}
