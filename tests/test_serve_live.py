"""gdjax serve as a live process on loopback: readiness, a third-party V2 client, 429 under overload, SIGTERM.

Marked `serve`: `make test` runs these as their own step. The third-party
client is NVIDIA's `tritonclient[http]`, run from its own virtual
environment (`.venv/tritonclient`, made by `make test`; or
$GDJAX_TRITONCLIENT_PYTHON) because it pins an ml_dtypes older than jax's.
"""

import asyncio
import concurrent.futures
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import REPO, configs_for_task, gdjax_env
from test_export import SEED, exported_models, reference_predictions, reference_samples, write_untrained_workdir
from test_export import test_images as make_images

pytest.importorskip("fastapi", reason="gdjax serve needs the serve extra: pip install -e '.[serve]'")
pytestmark = pytest.mark.serve

from benchmarks.serve_load import LiveServer, classify_body  # noqa: E402

TOKEN = "live-test-token-0123456789"
TRITON_PYTHON = os.environ.get("GDJAX_TRITONCLIENT_PYTHON", str(REPO / ".venv" / "tritonclient" / "bin" / "python"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir):
  return exported_models(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir)


@pytest.fixture(scope="module")
def live(exported, tmp_path_factory):
  """Both models, a token from the environment, and a small queue (16 rows) so that overload is cheap to reach."""
  log = open(tmp_path_factory.mktemp("serve_log") / "serve.log", "w")
  flags = ["--max_batch_size", "8", "--max_queue_rows", "16", "--max_images_per_request", "16"]
  flags += ["--max_samples_per_request", "16"]
  server = LiveServer(
    [exported.classifier, exported.gan], *flags, env=gdjax_env(devices=1, GDJAX_SERVE_TOKEN=TOKEN), log=log
  )
  deadline = time.monotonic() + 120
  while server.status("/v2/health/live") != 200:
    assert server.process.poll() is None and time.monotonic() < deadline, "gdjax serve did not start"
    time.sleep(0.05)
  server.ready_when_live = server.status("/v2/health/ready")
  with server:
    yield server
  log.close()


def test_live_at_once_ready_only_after_warm_up(live):
  assert live.ready_when_live == 503  # Buckets were still compiling.
  assert live.status("/v2/health/ready") == 200 and live.status("/v2/models/cdcgan/ready") == 200


TRITON_SCRIPT = textwrap.dedent(
  """
  import sys
  import numpy as np
  import tritonclient.http as http

  url, token, images_path, out = sys.argv[1:]
  client = http.InferenceServerClient(url=url)
  assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("cnn")
  meta = client.get_model_metadata("cdcgan")
  assert [i["name"] for i in meta["inputs"]] == ["seed", "sample_ids", "labels"], meta
  auth = {"Authorization": "Bearer " + token}

  images = np.load(images_path)
  request = http.InferInput("images", list(images.shape), "UINT8")
  request.set_data_from_numpy(images, binary_data=False)
  wanted = [http.InferRequestedOutput(n, binary_data=False) for n in ("probabilities", "labels")]
  classified = client.infer("cnn", [request], outputs=wanted, headers=auth)

  n = len(images)
  tensors = {"seed": np.array([SEED]), "sample_ids": np.arange(n), "labels": np.arange(n) % 10}
  inputs = []
  for name, value in tensors.items():
    tensor = http.InferInput(name, list(value.shape), "INT64")
    tensor.set_data_from_numpy(value.astype(np.int64), binary_data=False)
    inputs.append(tensor)
  sampled = client.infer("cdcgan", inputs, outputs=[http.InferRequestedOutput("images", binary_data=False)], headers=auth)
  np.savez(out, probabilities=classified.as_numpy("probabilities"), labels=classified.as_numpy("labels"),
           images=sampled.as_numpy("images"))
  """
).replace("SEED", str(SEED))


def test_tritonclient_gets_gdjax_predict_and_sample_answers(live, exported, tmp_path):
  if not os.path.exists(TRITON_PYTHON):
    pytest.skip(f"no tritonclient environment at {TRITON_PYTHON}; `make .venv/tritonclient/bin/python` makes one")
  images = make_images(7, seed=5)
  np.save(tmp_path / "images.npy", images)
  result = subprocess.run(
    [
      TRITON_PYTHON,
      "-c",
      TRITON_SCRIPT,
      f"127.0.0.1:{live.port}",
      TOKEN,
      tmp_path / "images.npy",
      tmp_path / "out.npz",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  got = np.load(tmp_path / "out.npz")
  expected = reference_predictions(exported.classifier_workdir, images)
  np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-6, rtol=0)
  np.testing.assert_array_equal(got["labels"], expected["labels"])
  assert got["images"].dtype == np.uint8
  assert np.abs(got["images"].astype(int) - reference_samples(exported.gan_workdir, 7).astype(int)).max() <= 1


def test_overload_gets_429_with_retry_after_and_the_server_recovers(live):
  import aiohttp

  url = f"{live.url}/v2/models/cnn/infer"
  headers = {"content-type": "application/json", "Authorization": f"Bearer {TOKEN}"}
  body = classify_body(np.random.default_rng(0))

  async def burst():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=300)) as http:

      async def one():
        async with http.post(url, data=body, headers=headers) as response:
          await response.read()
          return response.status, response.headers.get("Retry-After")

      return await asyncio.gather(*(one() for _ in range(300)))

  answers = asyncio.run(burst())
  statuses = [status for status, _ in answers]
  assert set(statuses) <= {200, 429} and statuses.count(429) > 0 and statuses.count(200) >= 16
  assert {retry for status, retry in answers if status == 429} == {"1"}
  assert live.post_json("/v2/models/cnn/infer", body, {"Authorization": f"Bearer {TOKEN}"})["outputs"]
  assert live.process.poll() is None


def test_sigterm_answers_the_request_in_flight_refuses_new_ones_and_exits_0(exported):
  # A 1.5 s batch window keeps one request in flight long enough to send SIGTERM during it.
  server = LiveServer([exported.gan], "--batch_window_ms", "1500", "--max_batch_size", "8", env=gdjax_env(devices=1))
  with server:
    request = {
      "inputs": [
        {"name": "seed", "shape": [1], "datatype": "INT64", "data": [SEED]},
        {"name": "sample_ids", "shape": [3], "datatype": "INT64", "data": [0, 1, 2]},
        {"name": "labels", "shape": [3], "datatype": "INT64", "data": [0, 1, 2]},
      ]
    }
    answer = {}
    thread = threading.Thread(
      target=lambda: answer.update(server.post_json("/v2/models/cdcgan/infer", json.dumps(request).encode()))
    )
    thread.start()
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
      urllib.request.urlopen(f"{server.url}/v2/health/live", timeout=5)
    thread.join(30)
    assert server.process.wait(30) == 0
  assert answer["outputs"][0]["shape"] == [3, 28, 28, 1]
  images = np.reshape(answer["outputs"][0]["data"], (3, 28, 28, 1))
  assert np.abs(images - reference_samples(exported.gan_workdir, 3).astype(int)).max() <= 1


def test_every_inference_function_of_a_vae_is_exported_and_served(tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir):
  """Export goes through the task interface alone: a VAE's four functions are served as `<dir>.<function>`."""
  if "vae_fashion_mnist" not in configs_for_task("vae"):
    pytest.skip("no VAE config")
  import jax

  from gdjax import cli, inference

  workdir = write_untrained_workdir(
    "vae_fashion_mnist", tmp_path / "vae_run", fake_fashion_mnist_dir, fake_tfds_data_dir
  )
  assert cli.main(["gdjax", "export", "--workdir", str(workdir), "--out", str(tmp_path / "vae")]) == 0
  trained = inference.TrainedModel(workdir)
  params = trained.task.inference_params(trained.state)
  functions = trained.task.inference_functions
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  latent_dim = functions["decode"].inputs["latents"].shape[1]
  noise = {k: rng.standard_normal((3, k, latent_dim)).astype(np.float32) for k in (2, 5)}

  def tensor(name, value, datatype):
    value = np.asarray(value)
    return {"name": name, "shape": list(value.shape), "datatype": datatype, "data": value.ravel().tolist()}

  with LiveServer([tmp_path / "vae"], "--max_batch_size", "4", env=gdjax_env(devices=1)) as server:
    served = {
      m["name"] for m in (json.load(urllib.request.urlopen(f"{server.url}/v2/models/vae.{f}")) for f in functions)
    }
    assert served == {f"vae.{name}" for name in functions}

    def infer(function, *tensors):
      answer = server.post_json(f"/v2/models/vae.{function}/infer", json.dumps({"inputs": list(tensors)}).encode())
      return {o["name"]: np.reshape(o["data"], o["shape"]) for o in answer["outputs"]}

    encoded = infer("encode", tensor("images", images, "UINT8"))
    expected = jax.jit(functions["encode"].fn)(params, {"images": images})
    np.testing.assert_allclose(encoded["mean"], expected["mean"], atol=1e-5, rtol=1e-5)
    latents = np.asarray(expected["mean"], np.float32)
    decoded = infer("decode", tensor("latents", latents, "FP32"))["images"]
    reference = jax.jit(functions["decode"].fn)(params, {"latents": latents})["images"]
    assert np.abs(decoded - np.asarray(reference).astype(int)).max() <= 1
    # Two requests with different numbers of draws per image arrive together; each gets its own answer.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      answers = list(
        pool.map(
          lambda k: infer("log_weights", tensor("images", images, "UINT8"), tensor("noise", noise[k], "FP32")), noise
        )
      )
    for k, answer in zip(noise, answers, strict=True):
      reference = jax.jit(functions["log_weights"].fn)(params, {"images": images, "noise": noise[k]})["log_weights"]
      assert answer["log_weights"].shape == (3, k)
      np.testing.assert_allclose(answer["log_weights"], reference, rtol=1e-4, atol=1e-3)
    too_far = {"inputs": [tensor("latents", np.full((1, latent_dim), 1e39), "FP32")]}
    with pytest.raises(urllib.error.HTTPError) as refused:
      server.post_json("/v2/models/vae.decode/infer", json.dumps(too_far).encode())
    assert refused.value.code == 400 and "float32" in json.loads(refused.value.read())["error"]
