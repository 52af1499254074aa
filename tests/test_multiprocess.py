"""Two `gdjax train` processes of 2 CPU devices each, joined over loopback, train as one run of 4 devices.

Each process is started with --coordinator_address, --num_processes and
--process_id, joins JAX's distributed runtime (Gloo collectives on CPU), reads
its rows of each global batch, and writes its part of the Orbax checkpoints;
only process 0 writes metrics. The result must equal a single-process run on
4 devices within float tolerance (the all-reduce sums in another order), with
jit and with pmap.

Marked `multiprocess`; `make test` runs these in their own step.
"""

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import REPO, gdjax_env, tiny_gan_flags

from gdjax import cli, run_state

pytestmark = pytest.mark.multiprocess
STEPS = 4


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_flags(config_name, local_dir, data_dir, feature_network_dir):
  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "total_steps": STEPS,
    "log_every_steps": 1,
    "eval_every_steps": STEPS,
    "checkpoint.every_steps": 2,
    "progress_bar": False,
  }
  if config_name == "mlp_fashion_mnist":  # Dropout and flips: random draws must not depend on the process layout.
    flags.update({"dataset.train_split": "train[:192]", "dataset.eval_split": "train[192:]", "batch_size": 32})
    flags.update({"eval_batch_size": 32, "model.hidden_sizes": "(32,)"})
  else:
    flags.update({"batch_size": 8, "n_critic": 2, **tiny_gan_flags(feature_network_dir)})
    flags.update({"model.generator.hidden_sizes": "(16,)", "model.discriminator.hidden_sizes": "(16,)"})
  return ["--config", str(REPO / "configs" / f"{config_name}.py")] + [f"--config.{k}={v}" for k, v in flags.items()]


def final_state(workdir):
  _, run = run_state.restore_workdir(workdir)
  return jax.device_get(run.state)


def train_records(workdir):
  lines = (Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["split"] == "train"]


def start_two_processes(workdir, flags, log_dir):
  """`gdjax train` as processes 0 and 1 of one run on loopback, each logging to its own file."""
  address = f"127.0.0.1:{free_port()}"
  children, logs = [], []
  for process_id in (0, 1):
    logs.append(open(log_dir / f"process_{process_id}.log", "w+"))  # Files, not pipes: neither may block the other.
    distributed = [f"--coordinator_address={address}", "--num_processes=2", f"--process_id={process_id}"]
    command = [sys.executable, "-m", "gdjax", "train", "--workdir", str(workdir), *flags, *distributed]
    children.append(subprocess.Popen(command, env=gdjax_env(devices=2), stdout=logs[-1], stderr=subprocess.STDOUT))
  return children, logs


def wait_and_read(children, logs, timeout, while_running=None):
  """Runs `while_running()`, waits for every child (killing any left over) and returns their logs."""
  try:
    if while_running is not None:
      while_running()
    for child in children:
      child.wait(timeout=timeout)
  finally:
    for child in children:
      if child.poll() is None:
        child.kill()
        child.wait()
  outputs = []
  for log in logs:
    log.seek(0)
    outputs.append(log.read())
    log.close()
  return outputs


@pytest.mark.parametrize(
  "config_name, parallelism",
  [("mlp_fashion_mnist", "jit"), ("mlp_gan_fashion_mnist", "jit"), ("mlp_fashion_mnist", "pmap")],
)
def test_two_processes_of_two_devices_equal_one_process_of_four(
  config_name, parallelism, tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir
):
  flags = run_flags(config_name, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir)
  flags.append(f"--config.parallelism={parallelism}")
  # The single-process reference runs first, so the TFDS data is prepared before two processes read it.
  assert cli.main(["gdjax", "train", "--workdir", str(tmp_path / "one"), *flags]) == 0

  children, logs = start_two_processes(tmp_path / "two", flags, tmp_path)
  outputs = wait_and_read(children, logs, timeout=300)
  assert [c.returncode for c in children] == [0, 0], "\n".join(o[-3000:] for o in outputs)
  assert "Checkpoints, metrics.jsonl" in outputs[0] and "Checkpoints, metrics.jsonl" not in outputs[1]

  one, two = train_records(tmp_path / "one"), train_records(tmp_path / "two")
  assert [r["step"] for r in two] == list(range(1, STEPS + 1))  # Process 0 alone wrote metrics.
  for a, b in zip(one, two):
    for name in ("loss", "d_loss", "g_loss", "grad_norm", "d_grad_norm", "g_grad_norm"):
      if name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, err_msg=f"{name} at step {a['step']}")

  state_one, state_two = final_state(tmp_path / "one"), final_state(tmp_path / "two")
  assert int(state_one.step) == int(state_two.step) == STEPS
  for path_and_a, b in zip(jax.tree_util.tree_leaves_with_path(state_one), jax.tree.leaves(state_two)):
    path, a = path_and_a
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))


def test_sigterm_to_one_process_saves_the_same_step_on_all_and_exits_zero(
  tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir
):
  """What a preempted TPU host sees: one process gets SIGTERM; JAX's preemption sync point stops all at one step."""
  flags = run_flags("mlp_fashion_mnist", fake_fashion_mnist_dir, fake_tfds_data_dir, feature_network_dir)
  flags += ["--config.total_steps=100000", "--config.schedule.name=constant", "--config.checkpoint.every_steps=100000"]
  flags += ["--config.eval_every_steps=100000"]
  children, logs = start_two_processes(tmp_path / "work", flags, tmp_path)

  def preempt_process_1_after_three_logged_steps():
    deadline = time.monotonic() + 240
    while not ((tmp_path / "work" / "metrics.jsonl").is_file() and len(train_records(tmp_path / "work")) >= 3):
      assert all(c.poll() is None for c in children) and time.monotonic() < deadline
      time.sleep(0.2)
    children[1].send_signal(signal.SIGTERM)

  outputs = wait_and_read(children, logs, timeout=120, while_running=preempt_process_1_after_three_logged_steps)
  assert [c.returncode for c in children] == [0, 0], "\n".join(o[-3000:] for o in outputs)
  found = re.search(r"received SIGTERM at step (\d+); saved checkpoint (\S+);", outputs[0])
  assert found, outputs[0][-3000:]
  step = int(found[1])
  assert [p.name for p in (tmp_path / "work" / "checkpoints").iterdir()] == [str(step)]
  assert int(final_state(tmp_path / "work").step) == step == train_records(tmp_path / "work")[-1]["step"]
