"""`gdjax cas` end to end on tiny settings, and `gdjax augment`'s plan and table.

The CAS run trains the shrunk CNN for a few steps through the real `gdjax
train` and `gdjax eval` subprocesses, once on the tiny generator's samples
and once on the fake Fashion-MNIST; the test reads the two eval_test.json
files itself and checks cas.json against them. The augmentation plan is
checked without running anything, and its table against NumPy on made-up
results.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tree_digest

from gdjax import cli
from gdjax.errors import ConfigError
from gdjax.sweep import augmentation, plan, spec

REPO = Path(__file__).resolve().parents[1]
ACCURACY = "classification/accuracy"


def small_classifier_flags(local_dir, data_dir) -> list[str]:
  """FIELD=VALUE overrides that shrink configs/cnn_fashion_mnist.py to a few steps of a tiny CNN on the fake data."""
  fields = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "dataset.train_split": "train[:192]",
    "dataset.eval_split": "train[192:]",
    "model.stage_widths": "(4, 8)",
    "model.dense_width": 16,
    "batch_size": 16,
    "eval_batch_size": 32,
    "total_steps": 4,
    "log_every_steps": 2,
    "eval_every_steps": 2,
    "checkpoint.every_steps": 2,
  }
  return [f"{field}={value}" for field, value in fields.items()]


def set_args(option, overrides) -> list[str]:
  return [arg for override in overrides for arg in (option, override)]


@pytest.fixture(scope="module")
def cas_out(tmp_path_factory, tiny_generator_workdir, fake_fashion_mnist_dir, fake_tfds_data_dir):
  out = tmp_path_factory.mktemp("cas") / "out"
  argv = ["gdjax", "cas", "--generator_workdir", str(tiny_generator_workdir), "--out", str(out), "--seeds", "0"]
  argv += set_args("--set", small_classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir))
  assert cli.main(argv) == 0
  return out, argv


def read_json(path: Path) -> dict:
  return json.loads(Path(path).read_text())


@pytest.mark.slow
class TestCas:
  def test_cas_json_holds_the_two_accuracies_and_their_ratio(self, cas_out, tiny_generator_workdir):
    out, _ = cas_out
    result = read_json(out / "cas.json")
    expected_keys = {"generator_workdir", "generator_step", "generator_checkpoint", "classifier_config", "mode"}
    expected_keys |= {"per_seed", "cas", "real_accuracy", "ratio", "commands", "command", "seeds", "failed"}
    assert expected_keys <= set(result)
    assert result["failed"] == [] and result["mode"] == "fixed" and result["seeds"] == [0]
    assert result["generator_workdir"] == str(tiny_generator_workdir.absolute()) and result["generator_step"] == 2
    assert result["classifier_config"].endswith("configs/cnn_fashion_mnist.py")
    (generated_run,) = (out / "generated" / "runs").iterdir()
    (real_run,) = (out / "real" / "runs").iterdir()
    cas = read_json(generated_run / "eval_test.json")[ACCURACY]
    real = read_json(real_run / "eval_test.json")[ACCURACY]
    (seed,) = result["per_seed"]
    assert seed["cas"] == cas and seed["real_accuracy"] == real
    assert seed["ratio"] == pytest.approx(cas / real, rel=1e-12)
    for name, value in (("cas", cas), ("real_accuracy", real), ("ratio", cas / real)):
      assert result[name]["mean"] == pytest.approx(value) and result[name]["n"] == 1 and result[name]["sd"] is None
    assert "| seed | CAS (trained on generated)" in (out / "cas.md").read_text()

  def test_the_two_runs_differ_only_in_their_training_data(self, cas_out, tiny_generator_workdir):
    out, _ = cas_out
    (generated_run,) = (out / "generated" / "runs").iterdir()
    (real_run,) = (out / "real" / "runs").iterdir()
    generated_config, real_config = read_json(generated_run / "config.json"), read_json(real_run / "config.json")
    assert generated_config["dataset"]["generated_fraction"] == 1.0
    assert generated_config["dataset"]["generator_workdir"] == str(tiny_generator_workdir.absolute())
    assert real_config["dataset"]["generator_workdir"] == ""
    generator_fields = ("generator_workdir", "generator_checkpoint", "generated_fraction", "generated_mode")
    for config in (generated_config, real_config):
      for field in generator_fields:
        config["dataset"].pop(field)
    assert generated_config == real_config
    assert read_json(generated_run / "eval_test.json")["split"] == "test"

  def test_running_again_reuses_the_finished_runs(self, cas_out):
    out, argv = cas_out
    digests = {p: tree_digest(p / "checkpoints") for p in (out / "generated" / "runs").iterdir()}
    digests |= {p: tree_digest(p / "checkpoints") for p in (out / "real" / "runs").iterdir()}
    before = read_json(out / "cas.json")
    assert cli.main(argv) == 0
    assert {p: tree_digest(p / "checkpoints") for p in digests} == digests
    assert read_json(out / "cas.json")["per_seed"] == before["per_seed"]


def test_cas_refuses_a_set_that_touches_the_generator(tmp_path):
  from gdjax.sweep import cas

  with pytest.raises(ConfigError, match="dataset.generated_fraction: set by this command itself"):
    cas.plan_cas(tmp_path / "generator", tmp_path / "out", set_flags=["dataset.generated_fraction=0.5"])
  assert not (tmp_path / "out").exists()


class TestAugmentationPlan:
  @pytest.fixture(scope="class")
  def planned(self, tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir):
    out = tmp_path_factory.mktemp("augment") / "out"
    classifier_set = small_classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir)
    gan_set = [f"dataset.local_dir={fake_fashion_mnist_dir}", f"dataset.data_dir={fake_tfds_data_dir}"]
    aug = augmentation.plan_augmentation(
      out, sizes=(40, 80), seeds=(0, 1), gan_set=gan_set, classifier_set=classifier_set
    )
    return out, aug

  def test_each_mixed_run_learns_from_the_gan_of_its_size_and_seed(self, planned):
    out, aug = planned
    assert len(aug.gan) == len(aug.real) == len(aug.mixed) == 4 and aug.split_size == 192
    for mixed in aug.mixed:
      gan_run = aug.generator_of[mixed.workdir]
      size = mixed.setting["dataset.subset_size"]
      assert gan_run.setting["dataset.subset_size"] == size and gan_run.seed == mixed.seed
      assert mixed.overrides["dataset.generator_workdir"] == gan_run.workdir
      assert mixed.overrides["dataset.generated_fraction"] == 0.5
      assert Path(gan_run.workdir).parent == out / "gan" / "runs"
      assert Path(mixed.workdir).parent == out / "mixed" / "runs"
      (real,) = [r for r in aug.real if r.seed == mixed.seed and r.setting["dataset.subset_size"] == size]
      # Same steps, batch and hyperparameters: the mixed run's overrides are the real run's plus the generator's.
      assert {k: v for k, v in mixed.overrides.items() if not k.startswith("dataset.generat")} == real.overrides

  def test_the_three_runs_of_a_seed_draw_the_same_subset(self, planned):
    _, aug = planned
    for run in (*aug.gan, *aug.real, *aug.mixed):
      texts = {"seed": str(run.seed), "dataset.subset_size": str(run.setting["dataset.subset_size"])}
      config = plan.parse_flags(Path(run.config), texts, where="test")
      assert config.dataset.subset_seed == run.seed
      assert f"--config.seed={run.seed}" in run.train_command

  def test_bad_sizes_are_refused(self, fake_fashion_mnist_dir, fake_tfds_data_dir, tmp_path):
    classifier_set = small_classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir)
    with pytest.raises(ConfigError, match=r"--sizes \[500\]: the training split has 192 examples"):
      augmentation.plan_augmentation(tmp_path, sizes=(40, 500), seeds=(0,), classifier_set=classifier_set)


def test_augmentation_table_is_mean_and_sd_over_seeds_and_the_paired_gain():
  config = spec.CONFIGS_DIR / "cnn_fashion_mnist.py"
  runs = {}
  for group in ("gan", "real", "mixed"):
    sweep = spec.single_config_sweep(config, (0, 1, 2), grid={"dataset.subset_size": (540,)})
    runs[group] = plan.plan_runs(sweep, Path("/nonexistent") / group)
  accuracy = {"real": [0.70, 0.72, 0.68], "mixed": [0.74, 0.73, 0.69]}
  fid = [30.0, 34.0, 29.0]
  results = {}
  for group, group_runs in runs.items():
    for run, k in zip(group_runs, range(3)):
      test = {"quality/fid": fid[k]} if group == "gan" else {ACCURACY: accuracy[group][k]}
      results[run.workdir] = {"status": "finished", "test": test}
  aug = augmentation.AugmentationPlan(
    split_size=54_000, sizes=(540,), fraction=0.5, mode="fixed", generator_of={}, **runs
  )
  (row,) = augmentation.summarize_augmentation(aug, results)["rows"]
  assert row["label_fraction"] == pytest.approx(0.01)
  for name, values in (("real", accuracy["real"]), ("mixed", accuracy["mixed"]), ("gan_fid", fid)):
    assert row[name]["mean"] == pytest.approx(np.mean(values)) and row[name]["sd"] == pytest.approx(
      np.std(values, ddof=1)
    )
  gains = np.subtract(accuracy["mixed"], accuracy["real"])
  assert row["gain"]["mean"] == pytest.approx(gains.mean()) and row["gain"]["sd"] == pytest.approx(gains.std(ddof=1))


@pytest.mark.slow
def test_gdjax_augment_end_to_end(tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir):
  """One label budget, one seed: the GAN and the real-only CNN, then the CNN on the subset mixed with that GAN."""
  from conftest import tiny_gan_flags

  gan_fields = {
    "dataset.local_dir": fake_fashion_mnist_dir,
    "dataset.data_dir": fake_tfds_data_dir,
    "batch_size": 8,
    "total_steps": 2,
    "log_every_steps": 1,
    "eval_every_steps": 2,
    "checkpoint.every_steps": 1,
    "model.generator.width": 4,
    "model.discriminator.width": 4,
    **tiny_gan_flags(feature_network_dir),
  }
  argv = ["gdjax", "augment", "--out", str(tmp_path / "out"), "--sizes", "40", "--seeds", "1"]
  argv += set_args("--gan_set", [f"{field}={value}" for field, value in gan_fields.items()])
  argv += set_args("--classifier_set", small_classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir))
  assert cli.main(argv) == 0
  result = read_json(tmp_path / "out" / "augmentation.json")
  (row,) = result["rows"]
  assert result["failed"] == [] and row["subset_size"] == 40 and row["label_fraction"] == pytest.approx(40 / 192)
  accuracy = {}
  for group in ("real", "mixed"):
    (workdir,) = (tmp_path / "out" / group / "runs").iterdir()
    accuracy[group] = read_json(workdir / "eval_test.json")[ACCURACY]
    assert row[group]["mean"] == accuracy[group] and read_json(workdir / "config.json")["dataset"]["subset_size"] == 40
  assert row["gain"]["mean"] == pytest.approx(accuracy["mixed"] - accuracy["real"])
  (gan_workdir,) = (tmp_path / "out" / "gan" / "runs").iterdir()
  (mixed_workdir,) = (tmp_path / "out" / "mixed" / "runs").iterdir()
  gan_dataset = read_json(gan_workdir / "config.json")["dataset"]
  assert gan_dataset["subset_size"] == 40 and gan_dataset["subset_seed"] == 1  # The GAN saw the same 40 images.
  assert read_json(mixed_workdir / "config.json")["dataset"]["generator_workdir"] == str(gan_workdir)
  assert row["gan_fid"]["mean"] == read_json(gan_workdir / "eval_test.json")["quality/fid"]
  assert "| labels | labelled images |" in (tmp_path / "out" / "augmentation.md").read_text()
