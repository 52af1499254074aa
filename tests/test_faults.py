"""Faults during `gdjax train`: SIGTERM, NaN and Inf, a corrupt checkpoint, a second run on a live workdir.

Runs on the tiny Fashion-MNIST look-alike of conftest. Where a fault needs a
separate process (a signal, a live run beside this one), `gdjax train` runs
as a child process; the rest runs in-process through `cli.main`.
"""

import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, gdjax_command, gdjax_env, tree_digest
from test_gan import small_gan_flags

from gdjax import checkpoint, cli, run_state
from gdjax.tasks.classifier import ClassifierTask
from gdjax.tasks.gan import GANTask


def classifier_flags(local_dir, data_dir, total_steps, **extra):
  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "dataset.train_split": "train[:192]",
    "dataset.eval_split": "train[192:]",
    "batch_size": 32,
    "eval_batch_size": 32,
    "total_steps": total_steps,
    "log_every_steps": 1,
    "eval_every_steps": 1000,
    "checkpoint.every_steps": 1,
    "checkpoint.keep_last": 10,
    "progress_bar": False,
    "model.hidden_sizes": "(16,)",
  }
  flags.update(extra)
  return [f"--config.{k}={v}" for k, v in flags.items()]


def gan_flags(local_dir, data_dir, feature_network_dir, total_steps, **extra):
  """test_gan's tiny MLP GAN run, evaluated only at the end, with every checkpoint kept."""
  overrides = {
    "eval_every_steps": 1000,
    "checkpoint.keep_last": 10,
    "model.generator.hidden_sizes": "(16,)",
    "model.discriminator.hidden_sizes": "(16,)",
  }
  return small_gan_flags(local_dir, data_dir, feature_network_dir, total_steps, **overrides, **extra)


def train(config_name, workdir, *flags):
  config = str(REPO / "configs" / f"{config_name}.py")
  return cli.main(["gdjax", "train", "--config", config, "--workdir", str(workdir), *flags])


def train_records(workdir):
  lines = (Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["split"] == "train"]


def saved_steps(workdir):
  return sorted(int(p.name) for p in (Path(workdir) / "checkpoints").iterdir() if p.name.isdigit())


def restore_step(workdir, step):
  """The state saved at `step` in `workdir`, on this process's devices."""
  _, run = run_state.restore_workdir(workdir, which=step)
  return jax.device_get(run.state)


def assert_finite(tree):
  for leaf in jax.tree.leaves(tree):
    assert np.all(np.isfinite(leaf))


# --- SIGTERM and the workdir lock.


def test_sigterm_saves_at_a_step_boundary_and_the_same_command_resumes(
  tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, capsys
):
  workdir = tmp_path / "work"
  # Long enough to be mid-run when the signal arrives; a constant learning
  # rate, so that the re-run may end sooner without changing any step.
  common = {"schedule.name": "constant", "checkpoint.every_steps": 100_000}
  flags = classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, 100_000, **common)
  child = subprocess.Popen(
    gdjax_command("train", "mlp_fashion_mnist", workdir, *flags),
    env=gdjax_env(devices=4),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )
  try:
    deadline = time.monotonic() + 180
    while not ((workdir / "metrics.jsonl").is_file() and len(train_records(workdir)) >= 3):
      assert child.poll() is None and time.monotonic() < deadline, child.communicate()[0][-3000:]
      time.sleep(0.2)

    # A second run on the live workdir is refused, and says which process holds it.
    assert train("mlp_fashion_mnist", workdir, *flags) == 2
    err = capsys.readouterr().err
    assert "is in use by another `gdjax train`" in err and f"pid {child.pid} " in err and "Traceback" not in err

    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=120)
  finally:
    if child.poll() is None:
      child.kill()
  assert child.returncode == 0, output[-3000:]
  found = re.search(
    r"received SIGTERM at step (\d+); saved checkpoint (\S+); re-run the same command to resume", output
  )
  assert found, output[-3000:]
  step = int(found[1])
  assert Path(found[2]) == workdir / "checkpoints" / str(step) and saved_steps(workdir) == [step]
  assert train_records(workdir)[-1]["step"] == step  # Every step it trained was logged, and saved.
  assert int(restore_step(workdir, step).step) == step

  resumed_flags = classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, step + 3, **common)
  assert train("mlp_fashion_mnist", workdir, *resumed_flags) == 0
  assert [r["step"] for r in train_records(workdir)][-4:] == [step, step + 1, step + 2, step + 3]
  assert saved_steps(workdir) == [step, step + 3]


def test_lock_of_a_dead_run_does_not_block(tmp_path):
  holder = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import fcntl, os, sys, time\n"
      f"fd = os.open({str(tmp_path / checkpoint.LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
      "fcntl.flock(fd, fcntl.LOCK_EX)\n"
      "os.write(fd, f'pid {os.getpid()} on testhost'.encode())\n"
      "print('locked', flush=True)\n"
      "time.sleep(600)\n",
    ],
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(checkpoint.WorkdirInUseError, match=f"pid {holder.pid} on testhost"):
      with checkpoint.lock_workdir(tmp_path):
        pass
  finally:
    holder.kill()  # SIGKILL: the holder cannot clean up; the OS drops its lock.
    holder.wait()
  with checkpoint.lock_workdir(tmp_path):
    assert f"pid {os.getpid()} " in (tmp_path / checkpoint.LOCK_FILE).read_text()


# --- NaN and Inf.


def poison_from(task_class, bad_step):
  """`task_class.train_step`, except that the update of loop step `bad_step` turns the state and a metric into NaN."""
  original = task_class.train_step

  def train_step(self, state, batch, rng):
    new_state, metrics = original(self, state, batch, rng)
    nan = jnp.where(state.step + 1 == bad_step, jnp.nan, 0.0)
    poison = lambda x: x + nan.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact) else x
    name = self.progress_metrics[0]
    return jax.tree.map(poison, new_state), {**metrics, name: metrics[name] + nan}

  return train_step


def test_nan_stops_the_run_naming_the_first_bad_step_and_keeps_the_last_good_checkpoint(
  tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, capsys
):
  # A learning rate that warms up to 1e17: steps 1-2 stay finite (the weights
  # reach ~1e16), step 3's forward pass through three layers overflows.
  # Checked every 4 steps; saved every 2.
  diverging = {
    "optimizer.learning_rate": 1e17,
    "schedule.name": "warmup_cosine",
    "schedule.warmup_steps": 10,
    "model.hidden_sizes": "(64, 64)",
    "model.dropout_rate": 0.0,
    "log_every_steps": 4,
    "checkpoint.every_steps": 2,
  }
  assert (
    train("mlp_fashion_mnist", tmp_path, *classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, 2, **diverging))
    == 0
  )
  before = tree_digest(tmp_path / "checkpoints" / "2")

  assert (
    train("mlp_fashion_mnist", tmp_path, *classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, 8, **diverging))
    == 2
  )
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith("gdjax train: error: Training diverged at step 3: ")
  assert "loss=nan" in err and "grad_norm=nan" in err and "skip_nonfinite_steps" in err
  assert f"step 2 in {tmp_path / 'checkpoints'}, is kept" in err
  assert saved_steps(tmp_path) == [2] and tree_digest(tmp_path / "checkpoints" / "2") == before
  assert_finite(restore_step(tmp_path, 2))


def test_nan_in_a_gan_stops_the_run_at_that_step(
  tmp_path, monkeypatch, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir, capsys
):
  monkeypatch.setattr(GANTask, "train_step", poison_from(GANTask, bad_step=3))
  flags = gan_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir, 4, log_every_steps=4)
  assert train("mlp_gan_fashion_mnist", tmp_path, *flags) == 2
  err = capsys.readouterr().err
  assert "Training diverged at step 3: d_loss=nan" in err
  assert saved_steps(tmp_path) == [1, 2]
  assert_finite(restore_step(tmp_path, 2))


@pytest.mark.parametrize("task_class", [ClassifierTask, GANTask], ids=["classifier", "gan"])
def test_skip_nonfinite_steps_discards_the_update_and_counts_it(
  task_class, tmp_path, monkeypatch, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir
):
  monkeypatch.setattr(task_class, "train_step", poison_from(task_class, bad_step=3))
  if task_class is ClassifierTask:
    config_name, flags = "mlp_fashion_mnist", classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, 4)
  else:
    config_name, flags = (
      "mlp_gan_fashion_mnist",
      gan_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir, 4),
    )
  assert train(config_name, tmp_path, *flags, "--config.skip_nonfinite_steps=True") == 0

  records = {r["step"]: r for r in train_records(tmp_path)}
  assert [records[step]["skipped_steps"] for step in (1, 2, 3, 4)] == [0, 0, 1, 0]
  loss = task_class.progress_metrics[0]
  assert loss not in records[3]  # Its only step was skipped: nothing to average.
  assert all(np.isfinite(records[step][loss]) for step in (1, 2, 4))
  before, skipped, after = (restore_step(tmp_path, step) for step in (2, 3, 4))
  assert int(skipped.step) == 3  # The step counter (data position, random key) moves on...
  for old, kept in zip(jax.tree.leaves(before.replace(step=0)), jax.tree.leaves(skipped.replace(step=0))):
    np.testing.assert_array_equal(old, kept)  # ...but the update is discarded.
  assert_finite(after)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(skipped), jax.tree.leaves(after)))


# --- A corrupt checkpoint.


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_corrupt_latest_checkpoint_warns_and_falls_back_to_the_previous_one(
  tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, caplog
):
  every_3 = {"checkpoint.every_steps": 3}
  assert (
    train("mlp_fashion_mnist", tmp_path, *classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, 6, **every_3))
    == 0
  )
  assert saved_steps(tmp_path) == [3, 6]
  largest = max(
    (p for p in (tmp_path / "checkpoints" / "6" / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
  )
  largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])  # A save cut short.

  assert (
    train("mlp_fashion_mnist", tmp_path, *classifier_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, 9, **every_3))
    == 0
  )
  warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name == "gdjax.checkpoint"]
  assert any(w.startswith("The checkpoint at step 6 ") and "could not be restored" in w for w in warnings), warnings
  assert any("Resumed from step 3 instead of step 6" in w for w in warnings), warnings
  assert all("\n" not in w for w in warnings)
  assert [r["step"] for r in train_records(tmp_path)] == [1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9]
  assert saved_steps(tmp_path) == [3, 6, 9]  # Step 6 saved anew...
  assert (tmp_path / "checkpoints_unreadable" / "6").is_dir()  # ...and the bad one kept aside, not deleted.
  gc.collect()  # Any read Orbax left unfinished would report its error now (the mark makes that a failure).
