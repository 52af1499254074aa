"""Load test of `gdjax serve` on loopback: latency and throughput with batching on and off, and overload.

Run from the repository root (serve and test extras), with an export of the
CNN classifier and of a generator:

  python -m benchmarks.serve_load --classifier EXPORT_DIR --generator EXPORT_DIR \\
      [--concurrency 1,8,32] [--seconds 5] [--repeats 3] [--overload_seconds 15]

For each model (the classifier with one image per request, the generator
with 16 samples per request) it starts two `gdjax serve` processes on
127.0.0.1, one batching and one not (`--nobatching`), and runs closed-loop
clients at each concurrency: each connection sends its next request when
the last is answered, for `--seconds` or `--max_requests` requests,
whichever comes first. Measurements alternate between the two servers,
`--repeats` times, each once its server has been idle for a second, and
the report gives the median over repeats of p50 and p99 latency and
requests/s. The client is wrk (C; `apt-get install wrk`)
where it is installed, else aiohttp (`--client aiohttp`), which costs the
shared cores several times more CPU per request.

Then the overload test: with batching on and a queue of
`--overload_queue_rows` rows, requests arrive open-loop (at a fixed rate,
whatever the answers) over `--overload_connections` keep-alive connections,
at twice the classifier's highest measured throughput, for
`--overload_seconds`. A bounded queue must answer the excess
with 429 and keep the latency of what it takes bounded: the report gives
the share of 429s and the p50/p99 of the 200s in each third of the run.
The open-loop client is hey (Go; `apt-get install hey`) where it is
installed, else aiohttp (wrk has no fixed-rate mode). The report adds the
server's own counts and latency shares from its /metrics.

The client runs in this process on the same machine as the server: on a
2-core CPU they share the cores, and so do any other jobs running (the
report prints the load average). Results go to benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def machine_line() -> str:
  cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
  load = " ".join(open("/proc/loadavg").read().split()[:3])
  return f"{cpu}, {os.cpu_count()} cores, {date.today().isoformat()}, load average {load} (1/5/15 min)"


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class LiveServer:
  """`gdjax serve DIRS FLAGS` as a child process on a free loopback port; ready on entry, SIGTERM on exit."""

  def __init__(self, directories, *flags, env: dict | None = None, ready_timeout_s: float = 300, log=None):
    self.port = free_port()
    self.url = f"http://127.0.0.1:{self.port}"
    command = [sys.executable, "-m", "gdjax", "serve", *map(str, directories), "--port", str(self.port), *flags]
    self.process = subprocess.Popen(
      command, cwd=REPO, env=env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    self.ready_timeout_s = ready_timeout_s

  def status(self, path: str) -> int:
    try:
      with urllib.request.urlopen(self.url + path, timeout=10) as response:
        return response.status
    except urllib.error.HTTPError as e:
      return e.code
    except OSError:
      return 0

  def wait_ready(self) -> None:
    deadline = time.monotonic() + self.ready_timeout_s
    while self.status("/v2/health/ready") != 200:
      if self.process.poll() is not None:
        raise RuntimeError(f"gdjax serve exited with {self.process.returncode} before it was ready")
      if time.monotonic() > deadline:
        raise TimeoutError(f"gdjax serve was not ready within {self.ready_timeout_s} s")
      time.sleep(0.2)

  def post_json(self, path: str, body: bytes, headers: dict | None = None) -> dict:
    request = urllib.request.Request(
      self.url + path, body, {"content-type": "application/json", **(headers or {})}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
      return json.loads(response.read())

  def rss_kib(self) -> int:
    """The server's resident set size (VmRSS), in KiB."""
    for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
      if line.startswith("VmRSS:"):
        return int(line.split()[1])
    raise RuntimeError("no VmRSS")

  def stop(self, timeout_s: float = 60) -> int:
    if self.process.poll() is None:
      self.process.send_signal(signal.SIGTERM)
      try:
        self.process.wait(timeout_s)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    return self.process.returncode

  def __enter__(self) -> LiveServer:
    try:
      self.wait_ready()
    except BaseException:
      self.stop()
      raise
    return self

  def __exit__(self, *exc) -> None:
    self.stop()


def classify_body(rng) -> bytes:
  image = rng.integers(0, 256, 784).tolist()
  return json.dumps(
    {"inputs": [{"name": "images", "shape": [1, 28, 28, 1], "datatype": "UINT8", "data": image}]}
  ).encode()


def sample_body(rng, conditional: bool, num: int = 16) -> bytes:
  inputs = [
    {"name": "seed", "shape": [1], "datatype": "INT64", "data": [int(rng.integers(-(2**31), 2**31))]},
    {"name": "sample_ids", "shape": [num], "datatype": "INT64", "data": list(range(num))},
  ]
  if conditional:
    inputs.append({"name": "labels", "shape": [num], "datatype": "INT64", "data": rng.integers(0, 10, num).tolist()})
  return json.dumps({"inputs": inputs}).encode()


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float, max_requests: int) -> dict:
  """`concurrency` clients, each sending its next request when the last is answered."""
  import aiohttp

  latencies, statuses = [], {}
  headers = {"content-type": "application/json"}
  async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
    deadline = time.perf_counter() + seconds
    sent = 0

    async def client(index):
      nonlocal sent
      while time.perf_counter() < deadline and sent < max_requests:
        sent += 1
        body = bodies[(index + sent) % len(bodies)]
        start = time.perf_counter()
        async with http.post(url, data=body, headers=headers) as response:
          await response.read()
        latencies.append(time.perf_counter() - start)
        statuses[response.status] = statuses.get(response.status, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
  return summary(latencies, statuses, elapsed)


async def open_loop(url: str, bodies: list[bytes], rate: float, seconds: float, connections: int) -> dict:
  """Requests arriving at `rate` per second, whatever the answers, over `connections` keep-alive connections.

  Latency runs from when the client sends the request (waiting for a free
  connection included); it is reported for the 200s by thirds of the run,
  which shows whether it grows. The client may fall behind the schedule on
  a busy machine, so the rate it achieved is reported too.
  """
  import aiohttp

  records = []  # (start offset, latency, status)
  headers = {"content-type": "application/json"}
  async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
    begin = time.perf_counter()
    tasks = []

    async def one(body, offset):
      start = time.perf_counter()
      try:
        async with http.post(url, data=body, headers=headers) as response:
          await response.read()
          status = response.status
          retry_after = response.headers.get("Retry-After")
      except aiohttp.ClientError:
        status, retry_after = 0, None
      records.append((offset, time.perf_counter() - start, status, retry_after))

    count = int(rate * seconds)
    for index in range(count):
      offset = index / rate
      delay = begin + offset - time.perf_counter()
      if delay > 0:
        await asyncio.sleep(delay)
      tasks.append(asyncio.create_task(one(bodies[index % len(bodies)], offset)))
    sending = time.perf_counter() - begin
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begin
  retry_after = sorted({r for *_, status, r in records if status == 429})
  records = [(offset, latency, status) for offset, latency, status, _ in records]
  return overload_summary(records, rate, seconds, sending=sending, elapsed=elapsed, retry_after=retry_after)


def hey_open_loop(url: str, body: bytes, rate: float, seconds: float, workers: int, scratch: Path) -> dict:
  """`open_loop` with hey (Go): `workers` connections, each sending at rate/workers per second.

  A worker whose answer is late sends its next request late, so the rate
  achieved is reported; it stays at the offered rate as long as answers come
  back faster than 1 / (rate/workers) seconds.
  """
  (scratch / "overload.json").write_bytes(body)
  command = ["hey", "-z", f"{seconds:g}s", "-c", str(workers), "-q", f"{rate / workers:.4f}", "-m", "POST"]
  command += ["-T", "application/json", "-D", str(scratch / "overload.json"), "-t", "30", "-o", "csv", url]
  output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
  records = []  # (start offset, latency, status)
  for line in output.splitlines()[1:]:
    fields = line.split(",")
    if len(fields) >= 8:
      records.append((float(fields[7]), float(fields[0]), int(fields[6])))
  return overload_summary(records, rate, seconds, sending=seconds, elapsed=seconds, retry_after=None)


def overload_summary(records, rate, seconds, *, sending, elapsed, retry_after) -> dict:
  statuses = {}
  for _, _, status in records:
    statuses[status] = statuses.get(status, 0) + 1
  thirds = []
  for third in range(3):
    low, high = third * seconds / 3, (third + 1) * seconds / 3
    ok = [latency for offset, latency, status in records if low <= offset < high and status == 200]
    refused = [latency for offset, latency, status in records if low <= offset < high and status == 429]
    thirds.append(
      {"ok": len(ok), "p50_ms": _ms(ok, 50), "p99_ms": _ms(ok, 99), "429": len(refused), "429_p99_ms": _ms(refused, 99)}
    )
  summary = {
    "offered_rps": round(rate, 1),
    "achieved_rps": round(len(records) / sending, 1),
    "sent": len(records),
    "statuses": statuses,
    "share_429": round(statuses.get(429, 0) / max(len(records), 1), 3),
    "answered_200_per_s": round(statuses.get(200, 0) / elapsed, 1),
    "thirds": thirds,
  }
  if retry_after is not None:
    summary["retry_after"] = retry_after
  return summary


# wrk's Lua hooks: POST the body, stop after MAX_REQUESTS answers, print the summary as one JSON line.
WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open("BODY_PATH", "rb"); wrk.body = file:read("*a"); file:close()
local answered = 0
response = function(status, headers, body)
  answered = answered + 1
  if answered >= MAX_REQUESTS then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %f, "non_2xx": %d, "socket_errors": %d, "p50_ms": %f, "p99_ms": %f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk_closed_loop(url: str, body: bytes, concurrency: int, seconds: float, max_requests: int, workdir: Path) -> dict:
  """The same closed loop with wrk (C, one thread), which leaves more of the shared cores to the server."""
  (workdir / "body.json").write_bytes(body)
  script = workdir / "post.lua"
  script.write_text(
    WRK_SCRIPT.replace("BODY_PATH", str(workdir / "body.json")).replace("MAX_REQUESTS", str(max_requests))
  )
  command = [
    "wrk",
    "-t1",
    f"-c{concurrency}",
    f"-d{max(1, round(seconds))}s",
    "--timeout",
    "30s",
    "-s",
    str(script),
    url,
  ]
  output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
  stats = json.loads(output.strip().splitlines()[-1])
  return {
    "requests": stats["requests"],
    "statuses": {"non_2xx": stats["non_2xx"], "socket_errors": stats["socket_errors"]},
    "rps": round(stats["requests"] / stats["seconds"], 1),
    "p50_ms": round(stats["p50_ms"], 1),
    "p99_ms": round(stats["p99_ms"], 1),
  }


def _ms(values, q):
  return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def summary(latencies, statuses, elapsed) -> dict:
  return {
    "requests": len(latencies),
    "statuses": statuses,
    "rps": round(len(latencies) / elapsed, 1),
    "p50_ms": _ms(latencies, 50),
    "p99_ms": _ms(latencies, 99),
  }


def closed_loop_with(client, url, bodies, scratch, concurrency, seconds, max_requests) -> dict:
  if client == "wrk":
    return wrk_closed_loop(url, bodies[0], concurrency, seconds, max_requests, scratch)
  return asyncio.run(closed_loop(url, bodies, concurrency, seconds, max_requests))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--classifier", required=True)
  parser.add_argument("--generator", required=True)
  parser.add_argument("--concurrency", default="1,8,32")
  parser.add_argument("--seconds", type=float, default=5.0)
  parser.add_argument("--max_requests", type=int, default=20_000)
  parser.add_argument("--repeats", type=int, default=3, help="alternations of batching on and off; medians reported")
  parser.add_argument("--overload_seconds", type=float, default=15.0)
  parser.add_argument("--overload_factor", type=float, default=2.0)
  parser.add_argument("--overload_queue_rows", type=int, default=128, help="the server's --max_queue_rows then")
  parser.add_argument("--overload_connections", type=int, default=512)
  parser.add_argument(
    "--saturating_rps", type=float, help="skip the closed-loop runs and overload at this times --overload_factor"
  )
  parser.add_argument(
    "--client",
    choices=["wrk", "aiohttp"],
    default="wrk" if shutil.which("wrk") else "aiohttp",
    help="closed-loop client: wrk (apt-get install wrk; the default where found) or aiohttp",
  )
  parser.add_argument(
    "--overload_client",
    choices=["hey", "aiohttp"],
    default="hey" if shutil.which("hey") else "aiohttp",
    help="open-loop client of the overload test: hey (Go; the default where found) or aiohttp",
  )
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  conditional = any(
    t["name"] == "labels"
    for f in json.loads((Path(args.generator) / "gdjax_export.json").read_text())["functions"].values()
    for t in f["inputs"]
  )
  workloads = {
    "classifier, 1 image/request": (args.classifier, [classify_body(rng) for _ in range(64)]),
    "generator, 16 samples/request": (args.generator, [sample_body(rng, conditional) for _ in range(64)]),
  }
  concurrencies = [int(c) for c in args.concurrency.split(",")] if args.saturating_rps is None else []
  print(machine_line(), flush=True)
  runs = []  # One entry per measurement, in the order taken.
  for workload, (directory, bodies) in workloads.items() if concurrencies else ():
    name = Path(directory).name
    # Both servers run side by side, and the measurements alternate between them, so that a change in what
    # else the shared machine is doing falls on both alike. The idle one only waits on its socket.
    with (
      LiveServer([directory]) as batched,
      LiveServer([directory], "--nobatching") as unbatched,
      tempfile.TemporaryDirectory() as scratch,
    ):
      servers = {True: batched, False: unbatched}
      for server in servers.values():  # Warm the connections and caches.
        closed_loop_with(args.client, f"{server.url}/v2/models/{name}/infer", bodies, Path(scratch), 4, 1, 200)
      for repeat in range(args.repeats):
        for concurrency in concurrencies:
          order = (True, False) if (repeat + concurrency) % 2 == 0 else (False, True)
          for batching in order:
            settle(servers[batching])
            url = f"{servers[batching].url}/v2/models/{name}/infer"
            result = closed_loop_with(
              args.client, url, bodies, Path(scratch), concurrency, args.seconds, args.max_requests
            )
            run = {"workload": workload, "batching": batching, "concurrency": concurrency, "repeat": repeat, **result}
            runs.append(run)
            print(json.dumps(run), flush=True)
  rows = medians(runs, args.client)
  print(table(rows), flush=True)
  saturating = args.saturating_rps or max(
    r["rps"] for r in rows if r["workload"].startswith("classifier") and r["batching"]
  )
  with (
    LiveServer([args.classifier], "--max_queue_rows", str(args.overload_queue_rows)) as server,
    tempfile.TemporaryDirectory() as scratch,
  ):
    url = f"{server.url}/v2/models/{Path(args.classifier).name}/infer"
    bodies = workloads["classifier, 1 image/request"][1]
    rate = args.overload_factor * saturating
    if args.overload_client == "hey":
      overload = hey_open_loop(url, bodies[0], rate, args.overload_seconds, args.overload_connections, Path(scratch))
    else:
      overload = asyncio.run(open_loop(url, bodies, rate, args.overload_seconds, args.overload_connections))
    overload["server_queue_rows_max"] = args.overload_queue_rows
    overload["server_metrics"] = server_latency(server)
    overload["still_up"] = server.process.poll() is None
  overload.update(saturating_rps=saturating, client=args.overload_client)
  print(json.dumps({"overload": overload}), flush=True)
  results = REPO / "benchmarks" / "results"
  results.mkdir(exist_ok=True)
  payload = {"machine": machine_line(), "args": vars(args), "rows": rows, "runs": runs, "overload": overload}
  (results / ("serve_load.json" if rows else "serve_load_overload.json")).write_text(
    json.dumps(payload, indent=2) + "\n"
  )
  if not rows:
    return
  speedup = [
    next(r["rps"] for r in rows if r["workload"].startswith("classifier") and r["concurrency"] == c and r["batching"])
    / next(
      r["rps"] for r in rows if r["workload"].startswith("classifier") and r["concurrency"] == c and not r["batching"]
    )
    for c in concurrencies
  ]
  print(
    "classifier throughput, batching on / off: "
    + ", ".join(f"{x:.2f}x at concurrency {c}" for c, x in zip(concurrencies, speedup, strict=True))
  )
  print(machine_line())


def answered(server: LiveServer) -> float:
  """How many requests the server has answered (its /metrics), whatever the endpoint and status."""
  text = urllib.request.urlopen(f"{server.url}/metrics", timeout=30).read().decode()
  return sum(
    float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("gdjax_serve_requests_total{")
  )


def settle(server: LiveServer, quiet_s: float = 1.0, timeout_s: float = 60) -> None:
  """Waits until the server has answered nothing for `quiet_s`. wrk stops with requests in flight, which the
  server still computes; measured again at once, the server took them on top of the next client's, and the
  generator's (32 clients of 16 rows fill the 512-row queue) got 429s."""
  deadline, count = time.monotonic() + timeout_s, answered(server)
  while time.monotonic() < deadline:
    time.sleep(quiet_s)
    count, last = answered(server), count
    if count == last:
      return


def server_latency(server: LiveServer) -> dict:
  """The server's own view from /metrics: answers by status, and the share of 200s answered within 0.5 s and
  1 s of reaching the app (time spent before that, in the kernel's queues, is not in it)."""
  text = urllib.request.urlopen(f"{server.url}/metrics", timeout=30).read().decode()
  counts, buckets = {}, {}
  for line in text.splitlines():
    if line.startswith("gdjax_serve_requests_total{") and 'endpoint="infer"' in line:
      code = line.split('code="')[1].split('"')[0]
      counts[code] = counts.get(code, 0) + float(line.rsplit(" ", 1)[1])
    if line.startswith("gdjax_serve_request_latency_seconds_bucket{") and 'endpoint="infer"' in line:
      buckets[line.split('le="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
  # The histogram holds every answer; the refusals (429s, answered before the body is read) all fall in its
  # lowest buckets, so the 200s within a bound are the answers within it less the refusals.
  ok = counts.get("200", 0) or 1
  refused = sum(n for code, n in counts.items() if code != "200")
  return {
    "answers_by_code": counts,
    "share_of_200_within_0.5s": round((buckets.get("0.5", 0) - refused) / ok, 3),
    "share_of_200_within_1s": round((buckets.get("1.0", 0) - refused) / ok, 3),
  }


def medians(runs: list[dict], client: str) -> list[dict]:
  """Per (workload, batching, concurrency): the median over repeats of requests/s, p50 and p99."""
  rows = []
  keys = dict.fromkeys((r["workload"], r["batching"], r["concurrency"]) for r in runs)
  for workload, batching, concurrency in keys:
    group = [r for r in runs if (r["workload"], r["batching"], r["concurrency"]) == (workload, batching, concurrency)]
    row = {"workload": workload, "batching": batching, "concurrency": concurrency, "client": client}
    row["repeats"] = len(group)
    row["requests"] = sum(r["requests"] for r in group)
    for field in ("rps", "p50_ms", "p99_ms"):
      row[field] = round(float(np.median([r[field] for r in group])), 1)
    row["non_200"] = sum(sum(v for k, v in r["statuses"].items() if k not in (200, "200")) for r in group)
    rows.append(row)
  return sorted(rows, key=lambda r: (r["workload"], not r["batching"], r["concurrency"]))


def table(rows) -> str:
  lines = [
    "| workload | batching | concurrency | requests (all repeats) | p50 ms | p99 ms | requests/s |",
    "|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    lines.append(
      f"| {r['workload']} | {'on' if r['batching'] else 'off'} | {r['concurrency']} | {r['requests']} | "
      f"{r['p50_ms']} | {r['p99_ms']} | {r['rps']} |"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  main()
