"""Test set-up: 4 fake CPU devices and strict NumPy semantics, as in Equinox's tests.

The environment must be set before JAX is imported anywhere.
"""

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["JAX_PLATFORMS"] = "cpu"

import gzip  # noqa: E402
import hashlib  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], "GPU")
jax.config.update("jax_numpy_rank_promotion", "raise")


def configs_for_task(task: str) -> list[str]:
  """Names of the files in `configs/` whose config has this `task`: new configs get tested by themselves."""
  import importlib.util
  from pathlib import Path

  names = []
  for path in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.py")):
    spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.get_config().task == task:
      names.append(path.stem)
  return names


def write_idx(path, array: np.ndarray) -> None:
  """Writes `array` (uint8) as a gzipped IDX file: the format Fashion-MNIST ships in."""
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def make_fake_fashion_mnist(directory, num_train=256, num_test=96, seed=0):
  """A tiny Fashion-MNIST look-alike whose classes are easy to tell apart.

  Class `k` is a bright horizontal band at rows 2k..2k+4 plus noise, so a
  model that learns anything at all gets it nearly right.
  """
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in (("train", num_train), ("t10k", num_test)):
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
      images[i, 2 * label + 2 : 2 * label + 6, 4:24] = 230
    write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
    write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    arrays[split] = (images, labels)
  return arrays


@pytest.fixture(scope="session")
def fake_fashion_mnist_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("fashion_mnist_idx")
  make_fake_fashion_mnist(directory)
  return directory


@pytest.fixture(scope="session")
def fake_tfds_data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


def write_random_feature_network(directory, name="tiny_cnn"):
  """A randomly initialised small CNN saved as a gdjax feature network."""
  import json

  import flax.serialization
  import jax.numpy as jnp

  from gdjax.models import CNNClassifier

  model_config = {"name": "cnn", "stage_widths": [4, 8], "convs_per_stage": 1, "dense_width": 16}
  model = CNNClassifier(stage_widths=(4, 8), convs_per_stage=1, dense_width=16)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)
  (directory / f"{name}.msgpack").write_bytes(flax.serialization.to_bytes(variables))
  (directory / f"{name}.json").write_text(json.dumps({"model": model_config, "input_shape": [28, 28, 1]}))
  return name


def tiny_gan_flags(feature_network_dir) -> dict:
  """Overrides that make a GAN config's data split and evaluations small enough for a test.

  The fake dataset's 256 training images split 192 / 64 into training and
  validation; every evaluation draws 40 samples, scored by the tiny random
  feature network of `feature_network_dir`.
  """
  return {
    "dataset.train_split": "train[:192]",
    "dataset.eval_split": "train[192:]",
    "dataset.shuffle_buffer_size": 192,
    "noise_dim": 8,
    "evaluation.feature_network": "tiny_cnn",
    "evaluation.feature_network_dir": feature_network_dir,
    "evaluation.num_samples": 40,
    "evaluation.batch_size": 20,
    "evals.quality.kid_subsets": 2,
    "evals.quality.kid_subset_size": 20,
    "evals.quality.precision_recall_samples": 30,
    "evals.grid.num_samples": 20,
  }


@pytest.fixture(scope="session")
def feature_network_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("feature_network")
  write_random_feature_network(directory)
  return directory


# --- `gdjax` in a child process, for what only a separate process can show:
# signals, a second run beside a live one, other device counts, several processes.

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def gdjax_env(devices: int = 4, **extra) -> dict:
  """The environment of a child `gdjax`: `devices` fake CPU devices, quiet TensorFlow."""
  env = dict(os.environ)
  env.update(
    XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    JAX_PLATFORMS="cpu",
    TF_CPP_MIN_LOG_LEVEL="3",
    **extra,
  )
  return env


def gdjax_command(command: str, config_name: str, workdir, *flags) -> list[str]:
  """`python -m gdjax <command> --config configs/<config_name>.py --workdir <workdir> <flags>`."""
  import sys

  config = str(REPO / "configs" / f"{config_name}.py")
  return [sys.executable, "-m", "gdjax", command, "--config", config, "--workdir", str(workdir), *flags]


def tree_digest(directory):
  """SHA-256 over every file's relative path and bytes under `directory`."""
  digest = hashlib.sha256()
  for path in sorted(Path(directory).rglob("*")):
    if path.is_file():
      digest.update(str(path.relative_to(directory)).encode() + path.read_bytes())
  return digest.hexdigest()


def train_tiny_generator(workdir, local_dir, data_dir, feature_network_dir) -> Path:
  """A conditional DCGAN (width-4 G and D) trained 2 steps on the fake data, without evaluations: about 25 s.

  With no evaluation its checkpoints carry no FID, so its "best" checkpoint is its latest.
  """
  from gdjax import cli

  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "batch_size": 8,
    "total_steps": 2,
    "log_every_steps": 1,
    "eval_every_steps": -1,  # Only in `gdjax eval`: an FID would cost more than the training.
    "checkpoint.every_steps": 1,
    "progress_bar": False,
    "model.generator.width": 4,
    "model.discriminator.width": 4,
    **tiny_gan_flags(feature_network_dir),
  }
  argv = ["gdjax", "train", "--config", str(REPO / "configs" / "cdcgan_fashion_mnist.py"), "--workdir", str(workdir)]
  assert cli.main(argv + [f"--config.{k}={v}" for k, v in flags.items()]) == 0
  return Path(workdir)


@pytest.fixture(scope="session")
def tiny_generator_workdir(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir):
  """A trained tiny conditional generator's workdir (gdjax/generated_data.py's tests, gdjax cas)."""
  workdir = tmp_path_factory.mktemp("tiny_generator") / "cdcgan"
  return train_tiny_generator(workdir, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir)
