"""`gdjax sweep --launcher ray`: the local launcher's numbers, bit for bit, and a Ray that stays on loopback.

Marked `ray` (run with `pytest -m ray tests/test_sweep_ray.py`) and skipped
where Ray is not installed. Ray is never imported at module level: the
launcher must set its environment before Ray is first imported.
"""

import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_sweep import read_jsonl, set_flags, sweep, write_sweep

pytestmark = [
  pytest.mark.ray,
  pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed; pip install 'gdjax[ray]' to run these tests"
  ),
]

REPO = Path(__file__).resolve().parents[1]
# Timing fields of the train records: the only numbers that may differ between two identical runs.
TIMING = ("steps_per_sec", "examples_per_sec", "seconds")


def loopback(address: str) -> bool:
  ip = ipaddress.ip_address(address.split("%")[0])
  if ip.version == 6 and ip.ipv4_mapped is not None:  # "::ffff:127.0.0.1": IPv4 on a dual-stack socket.
    ip = ip.ipv4_mapped
  return ip.is_loopback


def without_timing(records: list[dict]) -> list[dict]:
  return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_ray_launcher_reproduces_the_local_launcher_bit_for_bit(tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir):
  sweep_file = write_sweep(tmp_path, configs=("mlp_fashion_mnist",), seeds=(0, 1))
  common = ["--sweep", sweep_file, *set_flags(fake_fashion_mnist_dir, fake_tfds_data_dir)]
  environment = dict(os.environ)
  # Local first, one run at a time: it prepares the TFDS data, which two first runs at once would race on.
  assert sweep(*common, "--out", tmp_path / "local") == 0
  assert sweep(*common, "--out", tmp_path / "ray", "--launcher", "ray", "--parallel", "2") == 0
  assert dict(os.environ) == environment  # The launcher's Ray settings are gone again.

  local, ray = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "ray"))
  assert [r["status"] for r in ray["runs"]] == ["finished", "finished"]
  for a, b in zip(local["runs"], ray["runs"]):
    assert a["run_id"] == b["run_id"]
    assert a["test"] == b["test"] and a["validation"] == b["validation"] and a["step"] == b["step"]  # Exactly equal.
    for name in ("metrics.jsonl", "eval_test.json"):
      assert Path(b["workdir"], name).is_file()
    assert without_timing(read_jsonl(Path(a["workdir"]) / "metrics.jsonl")) == without_timing(
      read_jsonl(Path(b["workdir"]) / "metrics.jsonl")
    )
  assert [g["metrics"] for g in local["groups"]] == [g["metrics"] for g in ray["groups"]]


def test_local_ray_instance_keeps_every_socket_on_loopback():
  import psutil

  from gdjax.sweep import ray_launcher

  environment = dict(os.environ)
  with ray_launcher.ray_session(None, num_cpus=2) as ray:

    @ray.remote(num_cpus=1)
    def hold(seconds):
      time.sleep(seconds)
      return os.getpid()

    refs = [hold.remote(10) for _ in range(2)]
    me = psutil.Process()
    deadline = time.time() + 60
    while sum("hold" in p.name() for p in me.children(recursive=True)) < 2 and time.time() < deadline:
      time.sleep(0.5)  # Until both tasks run in their workers.
    processes = [me, *me.children(recursive=True)]
    sockets = []
    for process in processes:
      try:
        name = process.name()
        for c in process.net_connections(kind="inet"):
          sockets.append((name, process.pid, c.type.name, c.status, c.laddr, c.raddr))
      except psutil.NoSuchProcess:
        continue
    ray.get(refs)
  assert dict(os.environ) == environment

  names = {name for name, *_ in sockets}
  assert {"gcs_server", "raylet"} <= names and any("hold" in n for n in names), names
  outside = []
  for name, pid, kind, status, laddr, raddr in sockets:
    unconnected_udp = kind == "SOCK_DGRAM" and not raddr
    local_ok = loopback(laddr.ip) or (unconnected_udp and ipaddress.ip_address(laddr.ip).is_unspecified)
    if not local_ok or (raddr and not loopback(raddr.ip)):
      outside.append((name, pid, kind, status, laddr, raddr))
  assert not outside, f"Ray sockets outside loopback: {outside}"
  assert any(status == "LISTEN" for _, _, _, status, _, _ in sockets)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_local_ray_instance_connects_nowhere_but_loopback(tmp_path):
  """Every connect() of every Ray process, traced: the socket test above cannot see short-lived
  connections, such as Ray's cloud metadata probe (169.254.169.254) that the launcher sends to a closed port.
  Ray is imported before the launcher runs, the harder case for it."""
  script = tmp_path / "start_ray.py"
  script.write_text(
    textwrap.dedent(
      """
      import time
      import ray  # Before the launcher sets its variables: it must keep Ray on loopback all the same.
      from gdjax.sweep import ray_launcher

      with ray_launcher.ray_session(None, num_cpus=1) as ray:
        print(ray.get(ray.remote(num_cpus=1)(lambda: "ran").remote()))
        time.sleep(3)  # The dashboard's usage-stats module probes the cloud metadata soon after start.
      """
    )
  )
  trace = tmp_path / "connect.trace"
  command = ["strace", "-f", "-qq", "-e", "trace=connect,sendto", "-o", str(trace), sys.executable, str(script)]
  completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
  if completed.returncode != 0 and "ptrace" in completed.stderr:
    pytest.skip(f"strace cannot trace here: {completed.stderr.strip()[:200]}")
  assert completed.returncode == 0 and "ran" in completed.stdout, completed.stderr[-2000:]
  text = trace.read_text()
  addresses = re.findall(r'inet_addr\("([^"]+)"\)', text) + re.findall(r'inet_pton\(AF_INET6, "([^"]+)"', text)
  assert addresses, "no internet socket was traced"
  assert all(loopback(a) for a in addresses), sorted(set(a for a in addresses if not loopback(a)))
