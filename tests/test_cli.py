"""End to end through the `gdjax` command: train, resume, eval, predict, bad input.

Runs on a tiny Fashion-MNIST look-alike written as IDX files (see conftest),
so it exercises the real local builder and TFDS pipeline without the network.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import configs_for_task, tree_digest

from gdjax import cli
from gdjax.data import fashion_mnist_local

REPO = Path(__file__).resolve().parents[1]
# configs/cas_fashion_mnist.py trains on a generator's samples, so it needs a trained generator workdir:
# tests/test_generated_data.py runs its step on a tiny one.
CONFIGS = [name for name in configs_for_task("classifier") if name != "cas_fashion_mnist"]


def small_run_flags(local_dir, data_dir, total_steps=6, **extra):
  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "dataset.train_split": "train[:192]",
    "dataset.eval_split": "train[192:]",
    "dataset.shuffle_buffer_size": 192,
    "batch_size": 32,
    "eval_batch_size": 32,
    "total_steps": total_steps,
    "log_every_steps": 2,
    "eval_every_steps": 3,
    "checkpoint.every_steps": 3,
    "progress_bar": False,
  }
  flags.update(extra)
  return [f"--config.{k}={v}" for k, v in flags.items()]


def train(config_name, workdir, *overrides):
  return cli.main(
    ["gdjax", "train", "--config", str(REPO / "configs" / f"{config_name}.py"), "--workdir", str(workdir), *overrides]
  )


def read_metrics(workdir):
  return [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained_mlp(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir):
  workdir = tmp_path_factory.mktemp("mlp_run")
  flags = small_run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, total_steps=12)
  assert train("mlp_fashion_mnist", workdir, *flags, "--config.optimizer.learning_rate=3e-3") == 0
  return workdir


class TestTrain:
  def test_writes_checkpoints_metrics_and_tensorboard(self, trained_mlp):
    steps = sorted(int(p.name) for p in (trained_mlp / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 12 and len(steps) <= 3 + 1  # keep_last=3, plus possibly the best.
    records = read_metrics(trained_mlp)
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == [2, 3, 4, 6, 8, 9, 10, 12]
    assert {"loss", "accuracy", "grad_norm", "steps_per_sec", "learning_rate"} <= set(records[0])
    assert any(r["split"] == "eval" for r in records)
    assert list((trained_mlp / "tensorboard").glob("events.out.tfevents.*"))

  def test_rerun_resumes_from_latest_checkpoint(self, tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir):
    flags = small_run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, total_steps=6)
    assert train("mlp_fashion_mnist", tmp_path, *flags) == 0
    flags = small_run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, total_steps=9)
    assert train("mlp_fashion_mnist", tmp_path, *flags) == 0
    train_steps = [r["step"] for r in read_metrics(tmp_path) if r["split"] == "train"]
    assert train_steps == [2, 3, 4, 6, 8, 9]  # The second run started at step 7.

  @pytest.mark.parametrize("config_name", CONFIGS)
  def test_each_config_runs_one_step_on_mock_data(self, config_name, tmp_path):
    flags = small_run_flags(tmp_path / "no_idx_files", tmp_path / "tfds", total_steps=1)
    with tfds.testing.mock_data(num_examples=64):
      assert train(config_name, tmp_path / "work", *flags) == 0
    assert (tmp_path / "work" / "checkpoints" / "1").is_dir()


class TestEvalAndPredict:
  def test_eval_accuracy_equals_predict_accuracy_on_raw_test_data(self, trained_mlp, fake_fashion_mnist_dir, tmp_path):
    assert cli.main(["gdjax", "eval", "--workdir", str(trained_mlp)]) == 0
    result = json.loads((trained_mlp / "eval_test.json").read_text())
    assert result["classification/num_examples"] == 96 and result["step"] == 12

    images, labels = fashion_mnist_local.load_split_arrays(fake_fashion_mnist_dir, "test")
    np.save(tmp_path / "x.npy", images)  # (N, 28, 28): the channel axis is optional.
    args = ["gdjax", "predict", "--workdir", str(trained_mlp), "--images", str(tmp_path / "x.npy")]
    assert cli.main([*args, "--out", str(tmp_path / "p.npy"), "--probs", str(tmp_path / "q.npy")]) == 0
    predicted = np.load(tmp_path / "p.npy")
    probabilities = np.load(tmp_path / "q.npy")
    assert predicted.shape == (96,) and probabilities.shape == (96, 10)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(-1), predicted)
    assert result["classification/accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert result["classification/accuracy"] > 0.5  # The fixture's classes are easy; chance is 0.1.
    true_class = probabilities[np.arange(len(labels)), labels]
    assert result["classification/cross_entropy"] == pytest.approx(np.mean(-np.log(true_class)), rel=1e-4)

  @pytest.mark.parametrize(
    "array, message",
    [
      (np.zeros((4, 28, 28), np.float32), "uint8"),
      (np.zeros((4, 28, 28), np.int64), "losslessly"),
      (np.zeros((4, 32, 32, 3), np.uint8), r"\(N, 28, 28\)"),
      (np.zeros((28, 28), np.uint8), "leading batch axis"),
      (np.zeros((0, 28, 28), np.uint8), "empty"),
    ],
  )
  def test_bad_image_arrays_are_explained(self, trained_mlp, tmp_path, capsys, array, message):
    np.save(tmp_path / "bad.npy", array)
    args = ["gdjax", "predict", "--workdir", str(trained_mlp), "--images", str(tmp_path / "bad.npy")]
    assert cli.main([*args, "--out", str(tmp_path / "p.npy")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert pytest.importorskip("re").search(message, err)
    assert not (tmp_path / "p.npy").exists()

  def test_missing_workdir(self, tmp_path, capsys):
    assert cli.main(["gdjax", "eval", "--workdir", str(tmp_path / "nothing")]) == 2
    assert "not a gdjax workdir" in capsys.readouterr().err


class TestBadInput:
  def test_unknown_config_field(self, tmp_path, capsys):
    assert train("mlp_fashion_mnist", tmp_path, "--config.optimizer.learnin_rate=1e-3") == 2
    err = capsys.readouterr().err
    assert "learning_rate" in err and "Traceback" not in err

  def test_missing_flag(self, capsys):
    assert cli.main(["gdjax", "train", "--config", str(REPO / "configs" / "mlp_fashion_mnist.py")]) == 2
    assert "--workdir" in capsys.readouterr().err

  def test_unknown_command(self, capsys):
    assert cli.main(["gdjax", "fit"]) == 2
    assert "unknown command" in capsys.readouterr().err

  def test_workdir_of_another_model_is_refused_and_left_intact(
    self, trained_mlp, fake_fashion_mnist_dir, fake_tfds_data_dir, capsys
  ):
    before = tree_digest(trained_mlp)
    flags = small_run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, total_steps=20)
    assert train("cnn_fashion_mnist", trained_mlp, *flags) == 2
    err = capsys.readouterr().err
    assert "different model" in err and "Nothing in the workdir was changed" in err
    assert tree_digest(trained_mlp) == before

  def test_workdir_of_an_earlier_format_is_refused_and_left_intact(
    self, trained_mlp, tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, capsys
  ):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained_mlp, old)
    config = json.loads((old / "config.json").read_text())
    del config["gdjax_workdir_format"]  # As gdjax 0.1.0 wrote it.
    (old / "config.json").write_text(json.dumps(config))
    before = tree_digest(old)
    assert cli.main(["gdjax", "eval", "--workdir", str(old)]) == 2
    assert "workdir format 1; this gdjax reads format 2" in capsys.readouterr().err
    assert (
      train("mlp_fashion_mnist", old, *small_run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, total_steps=20)) == 2
    )
    assert "Nothing in the workdir was changed" in capsys.readouterr().err
    assert tree_digest(old) == before

  def test_missing_dataset_is_explained_and_workdir_untouched(self, tmp_path, monkeypatch, capsys):
    def no_network(self, *args, **kwargs):
      raise ConnectionError("network unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    flags = small_run_flags(tmp_path / "no_idx", tmp_path / "empty_tfds")
    assert train("mlp_fashion_mnist", tmp_path / "work", *flags) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_train_step_and_predict_are_traced_once(tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, monkeypatch):
  """Python runs inside a step function only while JAX traces it: no recompiles across steps or evals."""
  from gdjax.tasks import classifier

  traces = {"train_step": 0, "predict": 0}
  for name in traces:
    original = getattr(classifier.ClassifierTask, name)

    def counting(self, *args, _original=original, _name=name):
      traces[_name] += 1
      return _original(self, *args)

    monkeypatch.setattr(classifier.ClassifierTask, name, counting)
  flags = small_run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, total_steps=9)
  assert train("mlp_fashion_mnist", tmp_path, *flags) == 0
  assert len([r for r in read_metrics(tmp_path) if r["split"] == "eval"]) == 3
  assert traces == {"train_step": 1, "predict": 1}
