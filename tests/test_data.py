"""The local Fashion-MNIST builder and the TFDS pipelines."""

import gzip

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gdjax import config_defaults, data
from gdjax.data import fashion_mnist_local
from gdjax.errors import ConfigError, DatasetError


def dataset_config(local_dir, data_dir, **overrides):
  config = config_defaults.fashion_mnist_dataset()
  config.local_dir = str(local_dir)
  config.data_dir = str(data_dir)
  config.train_split = "train[:200]"
  config.eval_split = "train[200:]"
  config.shuffle_buffer_size = 256
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def builder(fake_fashion_mnist_dir, fake_tfds_data_dir):
  return data.get_builder(dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir))


class TestReadIdx:
  def test_round_trip(self, tmp_path):
    from conftest import write_idx

    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(fashion_mnist_local.read_idx(tmp_path / "a.gz"), array)

  def test_truncated_file_is_named(self, tmp_path):
    with gzip.open(tmp_path / "bad.gz", "wb") as f:
      f.write(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + b"\x00" * 10)
    with pytest.raises(ValueError, match="truncated"):
      fashion_mnist_local.read_idx(tmp_path / "bad.gz")

  def test_not_idx(self, tmp_path):
    (tmp_path / "x").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
      fashion_mnist_local.read_idx(tmp_path / "x")


class TestLocalBuilder:
  def test_features_match_tfds_fashion_mnist(self, builder):
    features = builder.info.features
    assert features["image"].shape == (28, 28, 1)
    assert features["image"].dtype == np.uint8
    assert features["label"].names == list(fashion_mnist_local.CLASS_NAMES)
    assert builder.info.splits["train"].num_examples == 256
    assert builder.info.splits["test"].num_examples == 96

  def test_examples_equal_the_idx_files(self, builder, fake_fashion_mnist_dir):
    images, labels = fashion_mnist_local.load_split_arrays(fake_fashion_mnist_dir, "test")
    examples = list(tfds.as_numpy(builder.as_dataset(split="test", shuffle_files=False)))
    got_images = np.stack([e["image"] for e in examples])
    got_labels = np.array([e["label"] for e in examples])
    # Examples may come back in any order; match them by content.
    order = np.lexsort(got_images.reshape(len(got_images), -1).T)
    expected_order = np.lexsort(images.reshape(len(images), -1).T)
    np.testing.assert_array_equal(got_images[order][..., 0], images[expected_order])
    np.testing.assert_array_equal(got_labels[order], labels[expected_order])

  def test_missing_files_are_listed(self, tmp_path):
    assert len(fashion_mnist_local.missing_files(tmp_path)) == 4

  def test_env_var_points_elsewhere(self, monkeypatch, tmp_path):
    monkeypatch.setenv(fashion_mnist_local.DIR_ENV_VAR, str(tmp_path))
    assert fashion_mnist_local.default_local_dir() == str(tmp_path)


class TestMissingDataset:
  def test_offline_download_failure_says_how_to_get_the_data(self, tmp_path, monkeypatch):
    def no_network(self, *args, **kwargs):
      raise ConnectionError("network unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    config = dataset_config(tmp_path / "no_idx_here", tmp_path / "tfds")
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
      data.get_builder(config)

  def test_unknown_dataset_name(self, tmp_path):
    config = dataset_config(tmp_path, tmp_path, name="fashion_mnistt")
    with pytest.raises(ConfigError, match="no dataset named"):
      data.get_builder(config)


class TestTrainBatches:
  def take(self, builder, config, n, **kwargs):
    batches = data.train_batches(builder, config, global_batch_size=32, **kwargs)
    return [next(batches) for _ in range(n)]

  @pytest.mark.parametrize("in_memory", [True, False])
  def test_uint8_images_from_the_split_and_int32_labels(
    self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir, in_memory
  ):
    config = dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, in_memory=in_memory)
    (batch,) = self.take(builder, config, 1, seed=0)
    assert batch["image"].shape == (32, 28, 28, 1) and batch["image"].dtype == np.uint8
    assert batch["label"].dtype == np.int32
    images, labels = fashion_mnist_local.load_split_arrays(fake_fashion_mnist_dir, "train")
    by_content = {image.tobytes(): label for image, label in zip(images, labels)}
    for image, label in zip(batch["image"], batch["label"]):
      assert by_content[image[..., 0].tobytes()] == label  # A training example, with its own label.

  @pytest.mark.parametrize("in_memory", [True, False])
  def test_same_seed_same_order_other_seed_other_order(
    self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir, in_memory
  ):
    config = dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, in_memory=in_memory)
    a = self.take(builder, config, 9, seed=3)
    b = self.take(builder, config, 9, seed=3)
    c = self.take(builder, config, 9, seed=4)
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x["label"], y["label"])
      np.testing.assert_array_equal(x["image"], y["image"])
    assert any(not np.array_equal(x["label"], z["label"]) for x, z in zip(a, c))

  @pytest.mark.parametrize("in_memory", [True, False])
  def test_resume_skips_to_the_same_batches(self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir, in_memory):
    config = dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, in_memory=in_memory)
    full = self.take(builder, config, 12, seed=5)
    resumed = self.take(builder, config, 4, seed=5, start_step=8)  # Crosses an epoch boundary (200/32).
    for x, y in zip(full[8:], resumed):
      np.testing.assert_array_equal(x["image"], y["image"])

  def test_in_memory_batches_do_not_depend_on_the_number_of_processes(
    self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir, monkeypatch
  ):
    import jax

    config = dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, in_memory=True)
    single = self.take(builder, config, 9, seed=2, start_step=0)  # Crosses an epoch boundary (200/32).
    parts = []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    for index in (0, 1):
      monkeypatch.setattr(jax, "process_index", lambda index=index: index)
      parts.append(self.take(builder, config, 9, seed=2))
    for whole, first, second in zip(single, *parts):
      assert len(first["label"]) == len(second["label"]) == 16
      for key in ("image", "label"):  # Process 0 feeds the first half of each global batch, process 1 the rest.
        np.testing.assert_array_equal(np.concatenate([first[key], second[key]]), whole[key])

  def test_each_epoch_covers_the_split_once(self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir):
    config = dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, train_split="train[:64]")
    first_epoch = self.take(builder, config, 2, seed=0)
    images = np.concatenate([b["image"] for b in first_epoch]).reshape(64, -1)
    assert len(np.unique(images, axis=0)) == 64


class TestEvalBatches:
  def test_padded_with_mask_covering_every_example_once(self, builder):
    batches = list(data.eval_batches(builder, "test", global_batch_size=40))
    assert len(batches) == 3  # 96 examples -> 40 + 40 + 16 real.
    masks = np.concatenate([b["mask"] for b in batches])
    assert masks.sum() == 96 and masks.shape == (120,)
    assert all(b["image"].shape == (40, 28, 28, 1) for b in batches)

  def test_bad_split_is_explained(self, builder):
    with pytest.raises(ConfigError, match="does not exist"):
      list(data.eval_batches(builder, "validation", global_batch_size=8))


def test_mock_data_builds_batches(tmp_path):
  config = ml_collections.ConfigDict(config_defaults.fashion_mnist_dataset())
  config.local_dir = str(tmp_path / "absent")
  config.data_dir = str(tmp_path)
  with tfds.testing.mock_data(num_examples=64):
    builder = data.get_builder(config)
    batch = next(data.train_batches(builder, config, global_batch_size=16, seed=0))
  assert batch["image"].shape == (16, 28, 28, 1)


def test_processes_preparing_the_same_dataset_at_once_all_succeed(fake_fashion_mnist_dir, tmp_path):
  """The runs of a sweep may all start on a fresh machine: one prepares, the others wait for it."""
  import subprocess
  import sys

  from conftest import gdjax_env

  script = (
    "import sys; from gdjax import config_defaults, data\n"
    "config = config_defaults.fashion_mnist_dataset()\n"
    "config.local_dir, config.data_dir = sys.argv[1], sys.argv[2]\n"
    "print(data.num_examples(data.get_builder(config), 'train'))\n"
  )
  children = [
    subprocess.Popen(
      [sys.executable, "-c", script, str(fake_fashion_mnist_dir), str(tmp_path / "tfds")],
      env=gdjax_env(devices=1),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for _ in range(3)
  ]
  outputs = [child.communicate(timeout=300)[0] for child in children]
  assert [child.returncode for child in children] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
  assert all(output.strip().splitlines()[-1] == "256" for output in outputs)


class TestClassBalancedSubset:
  def test_exact_counts_per_class_where_the_size_allows(self):
    labels = np.repeat(np.arange(10), 50)
    for size in (10, 23, 100, 499):
      chosen = data.class_balanced_subset(labels, size, seed=0)
      counts = np.bincount(labels[chosen], minlength=10)
      assert len(np.unique(chosen)) == size
      assert counts.min() == size // 10 and counts.max() == -(-size // 10)
      assert np.sum(counts == size // 10 + 1) == size % 10

  def test_a_small_class_gives_all_it_has_and_the_others_share_the_rest(self):
    labels = np.array([0] * 3 + [1] * 40 + [2] * 40)
    counts = np.bincount(labels[data.class_balanced_subset(labels, 60, seed=1)], minlength=3)
    np.testing.assert_array_equal(sorted(counts), [3, 28, 29])
    assert counts[0] == 3

  def test_same_seed_same_subset_other_seed_other_subset_and_sizes_nest(self):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    a, b = data.class_balanced_subset(labels, 100, seed=4), data.class_balanced_subset(labels, 100, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, data.class_balanced_subset(labels, 100, seed=5))
    for small, large in ((10, 35), (35, 100), (100, 120)):
      assert set(data.class_balanced_subset(labels, small, seed=4)) <= set(
        data.class_balanced_subset(labels, large, seed=4)
      )

  def test_whole_split_and_bad_sizes(self):
    labels = np.arange(20) % 4
    np.testing.assert_array_equal(data.class_balanced_subset(labels, 20, seed=0), np.arange(20))
    for size in (0, 21):
      with pytest.raises(ValueError, match="between 1 and 20"):
        data.class_balanced_subset(labels, size, seed=0)


class TestSubsetsAndSinglePass:
  """Through `train_batches`: the subset is the same on 1 and 4 devices, on 2 processes and across a resume."""

  def config(self, local_dir, data_dir, **overrides):
    return dataset_config(local_dir, data_dir, subset_size=40, subset_seed=7, **overrides)

  def take(self, builder, config, n, **kwargs):
    batches = data.train_batches(builder, config, global_batch_size=8, seed=1, **kwargs)
    return [next(batches) for _ in range(n)]

  def test_training_sees_exactly_the_subset(self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir):
    config = self.config(fake_fashion_mnist_dir, fake_tfds_data_dir)
    arrays = data.load_split(builder, "train[:200]", whole=True)
    chosen = data.class_balanced_subset(arrays["label"], 40, seed=7)
    epoch = self.take(builder, config, 5)  # 40 / 8: one epoch.
    images = np.concatenate([b["image"] for b in epoch])
    assert sorted(map(bytes, images)) == sorted(map(bytes, arrays["image"][chosen]))
    assert np.bincount(np.concatenate([b["label"] for b in epoch]), minlength=10).tolist() == [4] * 10

  def test_the_same_subset_on_one_and_four_devices_two_processes_and_after_a_resume(
    self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir, monkeypatch
  ):
    import jax

    from gdjax import parallel

    config = self.config(fake_fashion_mnist_dir, fake_tfds_data_dir)
    whole = self.take(builder, config, 7)  # Crosses an epoch boundary.
    resumed = self.take(builder, config, 3, start_step=4)
    for x, y in zip(whole[4:], resumed):
      np.testing.assert_array_equal(x["image"], y["image"])
    for devices in (1, 4):  # The global batch on a mesh of 1 or 4 devices holds the same rows.
      mesh = parallel.make_data_mesh(jax.devices()[:devices])
      placed = parallel.to_global_batch(whole[0], parallel.batch_sharding(mesh))
      np.testing.assert_array_equal(jax.device_get(placed["image"]), whole[0]["image"])
    parts = []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    for index in (0, 1):
      monkeypatch.setattr(jax, "process_index", lambda index=index: index)
      parts.append(self.take(builder, config, 7))
    for one, first, second in zip(whole, *parts):
      np.testing.assert_array_equal(np.concatenate([first["label"], second["label"]]), one["label"])

  def test_single_pass_reads_every_example_once_then_ends(self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir):
    config = dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, train_split="train[:60]", single_pass=True)
    batches = list(data.train_batches(builder, config, global_batch_size=16, seed=0))
    assert len(batches) == 4  # ceil(60 / 16), and then the iterator ends.
    masks = np.concatenate([b["mask"] for b in batches])
    assert masks.tolist() == [1.0] * 60 + [0.0] * 4
    images = np.concatenate([b["image"] for b in batches])[masks == 1]
    expected = data.load_split(builder, "train[:60]", whole=True)["image"]
    assert sorted(map(bytes, images)) == sorted(map(bytes, expected))
    resumed = list(data.train_batches(builder, config, global_batch_size=16, seed=0, start_step=3))
    np.testing.assert_array_equal(resumed[0]["image"], batches[3]["image"])

  @pytest.mark.parametrize(
    "overrides, total_steps, message",
    [
      (dict(single_pass=True), 12, r"200 training examples exactly once, in batches of 16 .* that is 13 steps"),
      (dict(subset_size=300), 1, r"subset_size=300, but the training split 'train\[:200\]' has 200 examples"),
      (dict(subset_size=20, in_memory=False), 1, r"needs the in-memory pipeline"),
    ],
  )
  def test_plans_that_do_not_fit_are_refused(
    self, builder, fake_fashion_mnist_dir, fake_tfds_data_dir, overrides, total_steps, message
  ):
    config = dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, **overrides)
    with pytest.raises(ConfigError, match=message):
      data.check_training_plan(builder, config, global_batch_size=16, total_steps=total_steps)
    assert (
      data.check_training_plan(
        builder, dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir), global_batch_size=16, total_steps=5
      )
      == 200
    )
