"""Exact resume: a run killed with SIGKILL and restarted logs the same numbers as one never stopped.

Also: a checkpoint written on 4 devices resumes on 1, and the other way round.
The killed run and the 1-device run are child processes; the rest runs in-process.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, gdjax_env, tiny_gan_flags

from gdjax import cli

K, TOTAL = 4, 8  # Checkpoint every K steps; the killed run stops during step K + 2.
TIMINGS = ("steps_per_sec", "examples_per_sec")

# `gdjax train`, except that it waits for each checkpoint to be committed, and
# then, about to log step $HOLD_AT_STEP, says so and sleeps until killed.
HOLDING_TRAIN = """
import os, sys, time
from gdjax import checkpoint, cli, metric_writers
hold_at = int(os.environ["HOLD_AT_STEP"])
save = checkpoint.save
def save_and_wait(manager, state, config, **kwargs):
  saved = save(manager, state, config, **kwargs)
  manager.wait_until_finished()
  return saved
checkpoint.save = save_and_wait
write = metric_writers.MetricWriter.write
def write_or_hold(self, step, split, scalars):
  if split == "train" and step == hold_at:
    print("holding", flush=True)
    time.sleep(600)
  write(self, step, split, scalars)
metric_writers.MetricWriter.write = write_or_hold
sys.exit(cli.main(["gdjax", *sys.argv[1:]]))
"""


def run_flags(config_name, local_dir, data_dir, feature_network_dir):
  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "total_steps": TOTAL,
    "log_every_steps": 1,
    "eval_every_steps": TOTAL,
    "checkpoint.every_steps": K,
    "progress_bar": False,
  }
  if config_name == "mlp_fashion_mnist":  # Dropout and flips: the random draws must resume too.
    flags.update({"dataset.train_split": "train[:192]", "dataset.eval_split": "train[192:]", "batch_size": 32})
    flags.update({"eval_batch_size": 32, "model.hidden_sizes": "(32,)"})
  else:  # Two optimizers, an EMA, fresh noise every step, n_critic=2 (two real batches per step).
    flags.update({"batch_size": 8, "n_critic": 2, **tiny_gan_flags(feature_network_dir)})
    flags.update({"model.generator.hidden_sizes": "(16,)", "model.discriminator.hidden_sizes": "(16,)"})
  return ["--config", str(REPO / "configs" / f"{config_name}.py")] + [f"--config.{k}={v}" for k, v in flags.items()]


def records(workdir, split="train"):
  """The last record written for each step: a resumed run's records replace the killed run's."""
  lines = (Path(workdir) / "metrics.jsonl").read_text().splitlines()
  by_step = {}
  for record in map(json.loads, lines):
    if record["split"] == split:
      by_step[record["step"]] = {k: v for k, v in record.items() if k not in TIMINGS}
  return by_step


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir):
  """Per config: a workdir trained for TOTAL steps without stopping, and the flags that did it."""
  runs = {}
  for config_name in ("mlp_fashion_mnist", "mlp_gan_fashion_mnist"):
    workdir = tmp_path_factory.mktemp(f"uninterrupted_{config_name}")
    flags = run_flags(config_name, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir)
    assert cli.main(["gdjax", "train", "--workdir", str(workdir), *flags]) == 0
    runs[config_name] = (workdir, flags)
  return runs


@pytest.mark.parametrize("config_name", ["mlp_fashion_mnist", "mlp_gan_fashion_mnist"])
def test_killed_and_restarted_run_logs_bit_identical_metrics(config_name, uninterrupted, tmp_path):
  reference_dir, flags = uninterrupted[config_name]
  child = subprocess.Popen(
    [sys.executable, "-c", HOLDING_TRAIN, "train", "--workdir", str(tmp_path), *flags],
    env=gdjax_env(devices=4, HOLD_AT_STEP=str(K + 2)),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )
  try:
    output = []
    for line in child.stdout:  # Ends when the child prints "holding", or exits.
      output.append(line)
      if line.strip() == "holding":
        break
    assert child.poll() is None, "".join(output)[-3000:]
  finally:
    child.kill()  # SIGKILL: no handler, no cleanup, no final save.
    child.wait()
  assert child.returncode == -9
  killed = records(tmp_path)
  assert sorted(killed) == list(range(1, K + 2))  # It trained past its last checkpoint, K.

  assert cli.main(["gdjax", "train", "--workdir", str(tmp_path), *flags]) == 0  # The same command.
  resumed, reference = records(tmp_path), records(reference_dir)
  assert sorted(resumed) == sorted(reference) == list(range(1, TOTAL + 1))
  for step in range(1, TOTAL + 1):
    assert resumed[step] == reference[step], step  # Exact equality of every float, before and after K.
  assert records(tmp_path, "eval")[TOTAL] == records(reference_dir, "eval")[TOTAL]


def test_checkpoint_from_four_devices_resumes_on_one_and_back(uninterrupted, tmp_path, capsys):
  """4 devices wrote step K; 1 device resumes it to TOTAL; 4 devices restore that for `gdjax eval`."""
  reference_dir, flags = uninterrupted["mlp_fashion_mnist"]
  shutil.copy(reference_dir / "config.json", tmp_path / "config.json")
  shutil.copytree(reference_dir / "checkpoints" / str(K), tmp_path / "checkpoints" / str(K))

  result = subprocess.run(
    [sys.executable, "-m", "gdjax", "train", "--workdir", str(tmp_path), *flags],
    env=gdjax_env(devices=1),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resumed from step {K}" in result.stderr
  resumed, reference = records(tmp_path), records(reference_dir)
  assert sorted(resumed) == list(range(K + 1, TOTAL + 1))
  for step in resumed:  # One device sums in another order: equal within float tolerance.
    for name in ("loss", "accuracy", "grad_norm", "param_norm"):
      np.testing.assert_allclose(resumed[step][name], reference[step][name], rtol=1e-4, err_msg=f"{name}@{step}")

  assert cli.main(["gdjax", "eval", "--workdir", str(tmp_path), "--split", "train[192:]"]) == 0
  evaluated = json.loads((tmp_path / "eval_train_192__.json").read_text())
  assert evaluated["step"] == TOTAL
  reference_accuracy = records(reference_dir, "eval")[TOTAL]["classification/accuracy"]
  assert evaluated["classification/accuracy"] == pytest.approx(reference_accuracy, abs=1 / 64)
  capsys.readouterr()
