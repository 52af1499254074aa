"""Training batches drawn from a conditional generator (gdjax/generated_data.py), checked against its `sample`.

A tiny conditional DCGAN trained for two steps on the fake Fashion-MNIST is
the generator. Expected values are worked out here: row counts from the
fraction by hand, class counts with NumPy, and the images drawn again
through the public `TrainedModel.sample` at the documented (seed, sample
id, label). Training that generator takes about 25 s on 2 cores (the GAN
step's compilation), once per session, so the tests that need it are marked
slow; the pure functions and the refusals need none.
"""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from gdjax import checkpoint, cli, config_defaults, data, inference
from gdjax import generated_data as generated
from gdjax.errors import ConfigError
from gdjax.tasks import classifier, gan

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_generator(tiny_generator_workdir):
  return inference.TrainedModel(tiny_generator_workdir, which="best")


def dataset_config(local_dir, data_dir, **overrides):
  config = config_defaults.fashion_mnist_dataset()
  config.update(
    dict(local_dir=str(local_dir), data_dir=str(data_dir), train_split="train[:200]", eval_split="train[200:]")
  )
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def builder(fake_fashion_mnist_dir, fake_tfds_data_dir):
  return data.get_builder(dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir))


@pytest.fixture
def make_config(fake_fashion_mnist_dir, fake_tfds_data_dir, tiny_generator_workdir):
  def make(**overrides):
    overrides = {"generator_workdir": str(tiny_generator_workdir), **overrides}
    return dataset_config(fake_fashion_mnist_dir, fake_tfds_data_dir, **overrides)

  return make


def take(builder, config, n, *, batch_size=16, seed=3, start_step=0):
  batches = generated.train_batches(builder, config, global_batch_size=batch_size, seed=seed, start_step=start_step)
  return [next(batches) for _ in range(n)]


def draw(trained, seed, sample_ids, labels):
  """The documented images, through the public API: ids 0..max drawn, those asked for kept (others: any label)."""
  sample_ids, labels = np.asarray(sample_ids), np.asarray(labels)
  all_labels = np.zeros(int(sample_ids.max()) + 1, np.int64)
  all_labels[sample_ids] = labels
  return trained.sample(len(all_labels), labels=all_labels, seed=seed)[sample_ids]


class TestPureFunctions:
  @pytest.mark.parametrize(
    "batch, fraction, real, generated_rows",
    [(128, 0.5, 64, 64), (128, 1.0, 0, 128), (16, 0.25, 12, 4), (10, 0.25, 8, 2), (32, 0.3, 22, 10), (8, 0.01, 8, 0)],
  )
  def test_rows_per_batch(self, batch, fraction, real, generated_rows):
    # 10 * 0.75 = 7.5 rounds half up to 8; 32 * 0.7 = 22.4 to 22.
    assert generated.rows_per_batch(batch, fraction) == (real, generated_rows)

  @pytest.mark.parametrize("count, classes", [(8, 10), (10, 10), (64, 10), (37, 10), (5, 3)])
  def test_balanced_labels(self, count, classes):
    labels = generated.balanced_labels(count, classes, np.random.default_rng(1))
    counts = np.bincount(labels, minlength=classes)
    assert labels.dtype == np.int32 and len(labels) == count
    assert counts.max() - counts.min() <= 1 and counts.min() == count // classes
    again = generated.balanced_labels(count, classes, np.random.default_rng(1))
    np.testing.assert_array_equal(labels, again)

  def test_stratified_order_spreads_equal_classes_evenly(self):
    labels = np.repeat(np.arange(10), 12)
    order = generated.stratified_order(labels, np.random.default_rng(0))
    assert sorted(order) == list(range(120))
    for start in range(0, 120 - 16):
      counts = np.bincount(labels[order[start : start + 16]], minlength=10)
      assert counts.max() - counts.min() <= 1

  def test_pool_labels(self):
    np.testing.assert_array_equal(generated.pool_labels(np.array([2, 0, 3])), [0, 0, 2, 2, 2])


@pytest.mark.slow
class TestRegenerate:
  @pytest.mark.parametrize("fraction, real_rows", [(0.25, 12), (0.5, 8), (1.0, 0)])
  def test_rows_labels_and_images_are_the_documented_ones(
    self, builder, make_config, trained_generator, fraction, real_rows
  ):
    config = make_config(generated_fraction=fraction, generated_mode="regenerate", generator_seed=5)
    batches = take(builder, config, 3)
    real_only = take(builder, generated.without_generator(config), 3, batch_size=real_rows) if real_rows else None
    rows = 16 - real_rows
    for step, batch in enumerate(batches):
      assert batch["image"].shape == (16, 28, 28, 1) and batch["image"].dtype == np.uint8
      assert batch["label"].shape == (16,) and batch["label"].dtype == np.int32
      if real_only:
        np.testing.assert_array_equal(batch["image"][:real_rows], real_only[step]["image"])
        np.testing.assert_array_equal(batch["label"][:real_rows], real_only[step]["label"])
      labels = batch["label"][real_rows:]
      counts = np.bincount(labels, minlength=10)
      assert counts.max() - counts.min() <= 1
      ids = step * rows + np.arange(rows)  # The documented sample ids of step `step`.
      np.testing.assert_array_equal(batch["image"][real_rows:], draw(trained_generator, 5, ids, labels))

  def test_same_seed_same_batches_and_a_resume_sees_the_same(self, builder, make_config):
    config = make_config(generated_mode="regenerate")
    full = take(builder, config, 10)
    again = take(builder, config, 10)
    resumed = take(builder, config, 4, start_step=6)
    for x, y in zip(full, again):
      np.testing.assert_array_equal(x["image"], y["image"])
    for x, y in zip(full[6:], resumed):
      np.testing.assert_array_equal(x["image"], y["image"])
      np.testing.assert_array_equal(x["label"], y["label"])
    other = take(builder, make_config(generated_mode="regenerate", generator_seed=1), 2)
    assert not np.array_equal(other[0]["image"][8:], full[0]["image"][8:])


@pytest.mark.slow
class TestFixedPool:
  def test_one_epoch_is_the_pool_with_the_subsets_class_counts(self, builder, make_config, trained_generator):
    config = make_config(generated_fraction=1.0, generated_mode="fixed", subset_size=40, subset_seed=2)
    subset = data.load_training_examples(builder, config)
    counts = np.bincount(subset["label"], minlength=10)
    assert counts.tolist() == [4] * 10
    epoch = take(builder, config, 5, batch_size=8)  # 40 pool images / 8: one epoch.
    for batch in epoch:
      batch_counts = np.bincount(batch["label"], minlength=10)
      assert batch_counts.max() - batch_counts.min() <= 1
    labels = np.concatenate([b["label"] for b in epoch])
    images = np.concatenate([b["image"] for b in epoch])
    pool_labels = np.repeat(np.arange(10), counts)  # Documented: class 0's first, then class 1's, ...
    pool = trained_generator.sample(40, labels=pool_labels, seed=config.generator_seed)
    assert sorted(zip(map(bytes, images), labels.tolist())) == sorted(zip(map(bytes, pool), pool_labels.tolist()))

  def test_the_whole_split_gives_its_own_class_counts_and_resumes(self, builder, make_config):
    config = make_config(generated_fraction=1.0, generated_mode="fixed")
    real_labels = data.load_split(builder, "train[:200]", whole=True)["label"]
    epoch = take(builder, config, 25 + 3, batch_size=8)  # 200 / 8 = 25 steps an epoch, then into the next.
    labels = np.concatenate([b["label"] for b in epoch[:25]])
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.bincount(real_labels, minlength=10))
    resumed = take(builder, config, 4, batch_size=8, start_step=24)
    for x, y in zip(epoch[24:], resumed):
      np.testing.assert_array_equal(x["image"], y["image"])
      np.testing.assert_array_equal(x["label"], y["label"])

  def test_mixed_keeps_the_real_rows(self, builder, make_config):
    config = make_config(generated_fraction=0.5, generated_mode="fixed")
    mixed = take(builder, config, 2)
    real_only = take(builder, generated.without_generator(config), 2, batch_size=8)
    for batch, real in zip(mixed, real_only):
      np.testing.assert_array_equal(batch["image"][:8], real["image"])
      assert sorted(batch) == ["image", "label"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["regenerate", "fixed"])
def test_two_processes_make_the_rows_of_one(builder, make_config, monkeypatch, mode):
  """Process p gives the p-th half of the real rows, then the p-th half of the generated rows."""
  config = make_config(generated_fraction=0.5, generated_mode=mode)
  single = take(builder, config, 3)
  restored = generated.ConditionalGenerator(config.generator_workdir, "best")
  monkeypatch.setattr(generated, "ConditionalGenerator", lambda workdir, which: restored)
  monkeypatch.setattr(generated, "generator_step", lambda workdir, which: restored.step)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  parts = []
  for index in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    parts.append(take(builder, config, 3))
  for whole, first, second in zip(single, *parts):
    for key in ("image", "label"):
      assert len(first[key]) == len(second[key]) == 8
      np.testing.assert_array_equal(np.concatenate([first[key][:4], second[key][:4]]), whole[key][:8])
      np.testing.assert_array_equal(np.concatenate([first[key][4:], second[key][4:]]), whole[key][8:])


class TestErrors:
  def check(self, config, message, *, image_shape=(28, 28, 1), num_classes=10, batch=16):
    with pytest.raises(ConfigError, match=message):
      generated.check_generator(config, image_shape=image_shape, num_classes=num_classes, global_batch_size=batch)

  def write_config(self, directory, config):
    config.input_shape = (28, 28, 1)
    checkpoint.write_workdir_config(directory, config)
    return directory

  @pytest.fixture
  def make_config(self, tmp_path):
    """Options checked before the workdir is read need no generator."""
    return lambda **overrides: dataset_config(
      "unused", "unused", **{"generator_workdir": str(tmp_path / "gen"), **overrides}
    )

  def test_missing_workdir(self, make_config, tmp_path):
    self.check(
      make_config(generator_workdir=str(tmp_path / "nope")), r"generator_workdir=.*not a trained gdjax workdir"
    )

  def test_not_a_generator(self, make_config, tmp_path):
    workdir = self.write_config(tmp_path, classifier.default_config())
    self.check(make_config(generator_workdir=str(workdir)), r"'classifier' run with no `sample` function")

  def test_not_conditional(self, make_config, tmp_path):
    workdir = self.write_config(tmp_path, gan.default_config())  # conditional=False
    self.check(make_config(generator_workdir=str(workdir)), r"unconditional generator.*cdcgan_fashion_mnist")

  def test_other_classes_or_images(self, make_config, tmp_path):
    config = gan.default_config()
    config.conditional = True
    workdir = self.write_config(tmp_path, config)
    self.check(make_config(generator_workdir=str(workdir)), r"generates 10 classes.* has 5", num_classes=5)
    self.check(
      make_config(generator_workdir=str(workdir)), r"shape \(28, 28, 1\).* has \(32, 32, 3\)", image_shape=(32, 32, 3)
    )
    self.check(make_config(generator_workdir=str(workdir)), r"holds no checkpoint yet")

  @pytest.mark.parametrize(
    "overrides, message",
    [
      (dict(generated_fraction=0.0), r"generated_fraction=0.0.*must lie in \(0, 1\]"),
      (dict(generated_fraction=1.5), r"generated_fraction=1.5.*must lie in \(0, 1\]"),
      (dict(generated_mode="mixup"), r"generated_mode='mixup' is unknown.*--config.dataset.generated_mode"),
      (dict(generator_checkpoint="first"), r"--config.dataset.generator_checkpoint"),
      (dict(single_pass=True), r"single_pass.*does not combine"),
      (dict(generated_fraction=0.01), r"leaves no generated row in a batch of 16"),
    ],
  )
  def test_bad_options(self, make_config, overrides, message):
    self.check(make_config(**overrides), message)

  def test_the_real_data_pipeline_refuses_a_generator_rather_than_ignoring_it(self, make_config):
    with pytest.raises(ConfigError, match=r"reads real data only.*gdjax.generated_data.train_batches"):
      data.train_batches(None, make_config(), global_batch_size=16, seed=0)

  def test_gdjax_train_refuses_before_writing_anything(self, fake_fashion_mnist_dir, fake_tfds_data_dir, tmp_path):
    argv = ["gdjax", "train", "--config", str(REPO / "configs" / "cas_fashion_mnist.py"), "--workdir"]
    argv += [str(tmp_path / "work"), f"--config.dataset.generator_workdir={tmp_path / 'absent'}"]
    argv += [f"--config.dataset.local_dir={fake_fashion_mnist_dir}", f"--config.dataset.data_dir={fake_tfds_data_dir}"]
    assert cli.main(argv) == 2
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_one_train_step_of_the_cas_config(tiny_generator_workdir, fake_fashion_mnist_dir, fake_tfds_data_dir, tmp_path):
  flags = {
    "dataset.local_dir": fake_fashion_mnist_dir,
    "dataset.data_dir": fake_tfds_data_dir,
    "dataset.train_split": "train[:192]",
    "dataset.eval_split": "train[192:]",
    "dataset.generator_workdir": tiny_generator_workdir,
    "model.stage_widths": "(4, 8)",
    "model.dense_width": 16,
    "batch_size": 16,
    "eval_batch_size": 32,
    "total_steps": 1,
    "progress_bar": False,
  }
  argv = ["gdjax", "train", "--config", str(REPO / "configs" / "cas_fashion_mnist.py"), "--workdir", str(tmp_path)]
  assert cli.main(argv + [f"--config.{k}={v}" for k, v in flags.items()]) == 0
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["dataset"]["generated_fraction"] == 1.0 and saved["dataset"]["generated_mode"] == "fixed"
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert any(r["split"] == "train" and r["step"] == 1 for r in records)
  assert any(r["split"] == "eval" and "classification/accuracy" in r for r in records)
