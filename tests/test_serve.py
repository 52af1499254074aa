"""gdjax serve in-process (FastAPI's TestClient): the V2 protocol, the PNG conveniences, bad input, metrics.

Served answers are checked against `gdjax predict` and `gdjax sample`
(`inference.TrainedModel` on the workdir), never against the server's own
code. Every malformed request must get a 4xx with a message, and a correct
request afterwards the correct answer. The live-process tests (SIGTERM,
429 under load, a third-party client) are in tests/test_serve_live.py.
"""

import concurrent.futures
import io
import json
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="gdjax serve needs the serve extra: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from test_export import SEED, exported_models, reference_predictions, reference_samples, write_made_up_export  # noqa: E402
from test_export import test_images as make_images  # noqa: E402

from benchmarks import serve_fuzz  # noqa: E402
from gdjax import cli  # noqa: E402
from gdjax.serving import artifact, runtime, server  # noqa: E402

TOKEN = "a-test-token-of-some-length"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir):
  return exported_models(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir)


@pytest.fixture(scope="module")
def client(exported):
  options = runtime.ServeOptions(
    max_batch_size=4,  # Buckets 1, 2, 4: few compilations, and a 64-row request is split into 16.
    max_images_per_request=64,
    max_samples_per_request=64,
    max_queue_rows=256,
    max_body_bytes=400_000,
    token=TOKEN,
  )
  app = server.create_app([exported.classifier, exported.gan], options)
  with TestClient(app) as test_client:
    deadline = time.monotonic() + 120
    while test_client.get("/v2/health/ready").status_code != 200:
      assert time.monotonic() < deadline, "the models did not warm up within 120 s"
      time.sleep(0.1)
    yield test_client


def v2_classify(images):
  shape = list(images.shape)
  return {"inputs": [{"name": "images", "shape": shape, "datatype": "UINT8", "data": images.ravel().tolist()}]}


def v2_sample(seed, ids, labels):
  n = len(ids)
  return {
    "inputs": [
      {"name": "seed", "shape": [1], "datatype": "INT64", "data": [seed]},
      {"name": "sample_ids", "shape": [n], "datatype": "INT64", "data": list(map(int, ids))},
      {"name": "labels", "shape": [n], "datatype": "INT64", "data": list(map(int, labels))},
    ]
  }


def outputs(response) -> dict:
  assert response.status_code == 200, response.text[:500]
  return {o["name"]: np.reshape(o["data"], o["shape"]) for o in response.json()["outputs"]}


def png(array) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


class TestProtocol:
  def test_health_metadata_and_readiness(self, client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/cnn/ready").json() == {"name": "cnn", "ready": True}
    meta = client.get("/v2/models/cdcgan").json()
    assert meta["name"] == "cdcgan" and meta["versions"] == ["1"]
    assert meta["inputs"] == [
      {"name": "seed", "datatype": "INT64", "shape": [1]},
      {"name": "sample_ids", "datatype": "INT64", "shape": [-1]},
      {"name": "labels", "datatype": "INT64", "shape": [-1]},
    ]
    assert meta["outputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28, 1]}]
    assert meta["parameters"]["ranges"]["labels"] == [0, 9]
    cnn = client.get("/v2/models/cnn/versions/1").json()
    assert [o["name"] for o in cnn["outputs"]] == ["probabilities", "labels"]
    missing = client.get("/v2/models/nope")
    assert missing.status_code == 404 and "cnn" in missing.json()["error"]

  @pytest.mark.parametrize("batch", [1, 7, 64])
  def test_served_probabilities_equal_gdjax_predict(self, client, exported, batch):
    images = make_images(batch, seed=batch)
    expected = reference_predictions(exported.classifier_workdir, images)
    request = {**v2_classify(images), "id": f"req-{batch}"}
    response = client.post("/v2/models/cnn/infer", json=request, headers=AUTH)
    got = outputs(response)
    assert response.json()["id"] == f"req-{batch}" and response.json()["model_name"] == "cnn"
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(got["labels"], expected["labels"])

  @pytest.mark.parametrize("batch", [1, 7, 64])
  def test_served_samples_equal_gdjax_sample(self, client, exported, batch):
    ids = np.arange(batch)
    response = client.post("/v2/models/cdcgan/infer", json=v2_sample(SEED, ids, ids % 10), headers=AUTH)
    images = outputs(response)["images"]
    assert images.shape == (batch, 28, 28, 1)
    assert np.abs(images - reference_samples(exported.gan_workdir, batch).astype(int)).max() <= 1

  def test_concurrent_requests_with_different_seeds_share_batches_and_get_their_own_rows(self, client, exported):

    ids = np.arange(2)  # Two requests fill a batch of 4.
    sample = artifact.load(exported.gan).functions["sample"]
    direct = {seed: sample(seed=[seed], sample_ids=ids, labels=ids)["images"] for seed in range(0, 6, 2)}

    def ask(seed):
      if seed % 2:  # Malformed ones in between: each is refused alone.
        bad = v2_sample(seed, ids, ids + 9)  # Label 10 is out of range.
        return seed, client.post("/v2/models/cdcgan/infer", json=bad, headers=AUTH)
      return seed, client.post("/v2/models/cdcgan/infer", json=v2_sample(seed, ids, ids), headers=AUTH)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      answers = list(pool.map(ask, list(range(6)) * 3))
    for seed, response in answers:
      if seed % 2:
        assert response.status_code == 400 and "labels" in response.json()["error"]
      else:
        assert np.abs(outputs(response)["images"] - direct[seed].astype(int)).max() <= 1

  def test_requested_outputs_and_nested_data(self, client, exported):
    images = make_images(2)
    request = v2_classify(images)
    request["inputs"][0]["data"] = images.tolist()  # V2 allows row-major nested lists.
    request["outputs"] = [{"name": "labels"}]
    response = client.post("/v2/models/cnn/infer", json=request, headers=AUTH)
    assert [o["name"] for o in response.json()["outputs"]] == ["labels"]
    np.testing.assert_array_equal(
      outputs(response)["labels"], reference_predictions(exported.classifier_workdir, images)["labels"]
    )

  def test_the_token_guards_inference_only(self, client):
    body = v2_classify(make_images(1))
    assert client.post("/v2/models/cnn/infer", json=body).status_code == 401
    wrong = client.post("/v2/models/cnn/infer", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.get("/v2/models/cnn").status_code == 200 and client.get("/metrics").status_code == 200


class TestConveniences:
  def test_png_upload_gets_the_v2_answer(self, client):
    image = make_images(3)[2]
    response = client.post(
      "/models/cnn/classify", content=png(image[..., 0]), headers={**AUTH, "content-type": "image/png"}
    )
    assert response.status_code == 200, response.text
    v2 = outputs(client.post("/v2/models/cnn/infer", json=v2_classify(image[None]), headers=AUTH))
    assert response.json()["label"] == v2["labels"][0]
    np.testing.assert_allclose(list(response.json()["probabilities"].values()), v2["probabilities"][0], atol=1e-7)

  def test_sample_grid_is_a_png_of_the_samples(self, client):
    response = client.get("/models/cdcgan/samples.png?seed=-3&num=4&labels=1,2", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    grid = Image.open(io.BytesIO(response.content))
    assert grid.mode == "L" and grid.size == (2 * 30 + 2, 2 * 30 + 2)  # 2x2 tiles of 28 px, 2 px apart.


def bad_requests():
  """(what, method, path, headers, body, expected status, words of the message)."""
  image = make_images(1)
  good = v2_classify(image)

  def tensor(**changes):
    request = json.loads(json.dumps(good))
    request["inputs"][0].update(changes)
    return json.dumps(request).encode()

  sample = json.dumps(v2_sample(0, [0], [0]))
  cnn, gen = "/v2/models/cnn/infer", "/v2/models/cdcgan/infer"
  json_type, png_type = {"content-type": "application/json"}, {"content-type": "image/png"}
  return [
    ("wrong shape", "POST", cnn, json_type, tensor(shape=[1, 28, 28]), 400, "cannot take shape"),
    ("wrong datatype", "POST", cnn, json_type, tensor(datatype="FP32"), 400, "must have datatype UINT8"),
    ("unknown datatype", "POST", cnn, json_type, tensor(datatype="FLOAT"), 400, "unknown datatype"),
    ("float pixels", "POST", cnn, json_type, tensor(data=[0.5] * 784), 400, "must hold JSON integers"),
    ("boolean pixels", "POST", cnn, json_type, tensor(data=[True] * 784), 400, "bool"),
    ("string pixels", "POST", cnn, json_type, tensor(data=["1"] * 784), 400, "str"),
    ("short data", "POST", cnn, json_type, tensor(data=[0] * 783), 400, "783 data values"),
    ("pixel 256", "POST", cnn, json_type, tensor(data=[256] * 784), 400, "[0, 255]"),
    ("pixel -1", "POST", cnn, json_type, tensor(data=[-1] * 784), 400, "[0, 255]"),
    ("NaN", "POST", gen, json_type, sample.replace("[0]}", "[NaN]}", 1).encode(), 400, "not valid JSON"),
    ("not JSON", "POST", cnn, json_type, b"images=1", 400, "not valid JSON"),
    ("JSON list", "POST", cnn, json_type, b"[1, 2]", 400, '"inputs"'),
    ("deep nesting", "POST", cnn, json_type, b"[" * 100_000, 400, "nested too deeply"),
    (
      "huge integer literal",
      "POST",
      gen,
      json_type,
      sample.replace("[0]", "[" + "9" * 5000 + "]", 1).encode(),
      400,
      "not valid JSON",
    ),
    (
      "integer over int64",
      "POST",
      gen,
      json_type,
      sample.replace("[0]", f"[{2**70}]", 1).encode(),
      400,
      "too large for INT64",
    ),
    ("seed over int32", "POST", gen, json_type, sample.replace("[0]", f"[{2**31}]", 1).encode(), 400, "seed"),
    ("label 10", "POST", gen, json_type, sample.replace("[0]}]", "[10]}]").encode(), 400, "[0, 9]"),
    (
      "negative sample id",
      "POST",
      gen,
      json_type,
      sample.replace(
        '"sample_ids", "shape": [1], "datatype": "INT64", "data": [0]',
        '"sample_ids", "shape": [1], "datatype": "INT64", "data": [-1]',
      ).encode(),
      400,
      "sample_ids",
    ),
    (
      "missing input",
      "POST",
      gen,
      json_type,
      json.dumps({"inputs": v2_sample(0, [0], [0])["inputs"][:2]}).encode(),
      400,
      "missing",
    ),
    ("duplicate input", "POST", cnn, json_type, json.dumps({"inputs": good["inputs"] * 2}).encode(), 400, "twice"),
    (
      "unknown output",
      "POST",
      cnn,
      json_type,
      json.dumps({**good, "outputs": [{"name": "logits"}]}).encode(),
      400,
      "Unknown output",
    ),
    ("id not a string", "POST", cnn, json_type, json.dumps({**good, "id": 7}).encode(), 400, '"id"'),
    ("65 images", "POST", cnn, json_type, json.dumps(v2_classify(make_images(65))).encode(), 400, "at most 64"),
    ("65 samples", "POST", gen, json_type, json.dumps(v2_sample(0, range(65), [0] * 65)).encode(), 400, "at most 64"),
    ("body over the limit", "POST", cnn, json_type, b" " * 400_001, 413, "--max_body_bytes"),
    (
      "wrong content type",
      "POST",
      cnn,
      {"content-type": "text/plain"},
      json.dumps(good).encode(),
      415,
      "application/json",
    ),
    (
      "binary extension",
      "POST",
      cnn,
      {**json_type, "Inference-Header-Content-Length": "10"},
      json.dumps(good).encode(),
      400,
      "binary",
    ),
    ("unknown model", "POST", "/v2/models/nope/infer", json_type, json.dumps(good).encode(), 404, "No model named"),
    (
      "unknown version",
      "POST",
      "/v2/models/cnn/versions/2/infer",
      json_type,
      json.dumps(good).encode(),
      404,
      "Version",
    ),
    (
      "classify a generator",
      "POST",
      "/models/cdcgan/classify",
      png_type,
      png(image[0, ..., 0]),
      400,
      "does not classify",
    ),
    ("not a PNG", "POST", "/models/cnn/classify", png_type, b"GIF89a....", 400, "not a PNG"),
    ("PNG as JSON", "POST", "/models/cnn/classify", json_type, png(image[0, ..., 0]), 415, "image/png"),
    (
      "truncated PNG",
      "POST",
      "/models/cnn/classify",
      png_type,
      png(image[0, ..., 0])[:60],
      400,
      "truncated or corrupt",
    ),
    ("PNG of 32x32", "POST", "/models/cnn/classify", png_type, png(np.zeros((32, 32), np.uint8)), 400, "32x32"),
    ("RGB PNG", "POST", "/models/cnn/classify", png_type, png(np.zeros((28, 28, 3), np.uint8)), 400, "not converted"),
    ("animated PNG", "POST", "/models/cnn/classify", png_type, serve_fuzz.animated_png(), 400, "animated"),
    ("decompression bomb", "POST", "/models/cnn/classify", png_type, serve_fuzz.bomb_png(9_000), 400, "9000x9000"),
    ("grid of 65", "GET", "/models/cdcgan/samples.png?num=65", {}, b"", 400, "num must lie in [1, 64]"),
    ("grid seed not an int", "GET", "/models/cdcgan/samples.png?seed=x", {}, b"", 400, "integers"),
    ("grid of a classifier", "GET", "/models/cnn/samples.png", {}, b"", 400, "does not generate"),
    ("unknown route", "GET", "/v3/anything", {}, b"", 404, "Not Found"),
    ("wrong method", "GET", cnn, {}, b"", 405, "Method Not Allowed"),
  ]


@pytest.mark.parametrize(
  "what, method, path, headers, body, status, words",
  bad_requests(),
  ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_bad_input_gets_a_4xx_with_a_message(client, what, method, path, headers, body, status, words):
  response = client.request(method, path, content=body or None, headers={**AUTH, **headers})
  assert response.status_code == status, (what, response.text[:300])
  assert words in response.json()["error"], (what, response.json())


@pytest.mark.parametrize(
  "what, edit",
  [
    ("a UTF-8 byte order mark", lambda body: b"\xef\xbb\xbf" + body),
    ("a lone surrogate in the id", lambda body: body.replace(b'"id": "x"', b'"id": "\\ud800"')),
    ("true and false in the id", lambda body: body.replace(b'"id": "x"', b'"id": "true or false"')),
    ("nested data", None),
  ],
  ids=lambda v: v if isinstance(v, str) else "",
)
def test_bodies_orjson_reads_otherwise_get_the_answers_json_gives(client, what, edit):
  """The inference route reads bodies with orjson, and falls back to `json` wherever orjson refuses."""
  images = make_images(2, seed=5)
  request = {**v2_classify(images), "id": "x"}
  expected = outputs(client.post("/v2/models/cnn/infer", json=request, headers=AUTH))
  if edit is None:
    request["inputs"][0]["data"] = images.tolist()
    body = json.dumps(request).encode()
  else:
    body = edit(json.dumps(request).encode())
  response = client.post("/v2/models/cnn/infer", content=body, headers={**AUTH, "content-type": "application/json"})
  np.testing.assert_array_equal(outputs(response)["probabilities"], expected["probabilities"])
  assert response.json()["id"] == json.loads(body.decode("utf-8-sig"))["id"]


def test_the_server_answers_correctly_after_hostile_requests(client, exported):
  """A short run of benchmarks/serve_fuzz.py's strategies; the full campaign (1,500 requests) is in docs/serving.md."""
  images = make_images(7, seed=11)
  before = outputs(client.post("/v2/models/cnn/infer", json=v2_classify(images), headers=AUTH))

  def send(method, path, headers, body):
    return client.request(method, path, content=body or None, headers={**AUTH, **headers}).status_code

  counts = serve_fuzz.run_campaign(send, classifier="cnn", generator="cdcgan", examples=150, body_limit=400_000)
  assert sum(counts.values()) == 150 and all(400 <= status < 500 for status in counts)
  after = outputs(client.post("/v2/models/cnn/infer", json=v2_classify(images), headers=AUTH))
  np.testing.assert_array_equal(after["probabilities"], before["probabilities"])
  expected = reference_predictions(exported.classifier_workdir, images)
  np.testing.assert_allclose(after["probabilities"], expected["probabilities"], atol=1e-6, rtol=0)


def test_metrics_count_requests_errors_batches_and_label_only_known_models(client):
  client.post("/v2/models/cnn/infer", json=v2_classify(make_images(1)), headers=AUTH)
  client.post("/v2/models/made-up-name/infer", json=v2_classify(make_images(1)), headers=AUTH)
  text = client.get("/metrics").text
  assert 'gdjax_serve_requests_total{code="200",endpoint="infer",model="cnn"}' in text
  assert 'gdjax_serve_errors_total{code="404",endpoint="infer",model="-"}' in text
  assert "made-up-name" not in text
  assert 'gdjax_serve_batch_rows_count{model="cnn"}' in text and 'gdjax_serve_queue_rows{model="cnn"}' in text
  assert 'gdjax_serve_request_latency_seconds_bucket{endpoint="infer",le="0.1",model="cnn"}' in text


def test_serve_refuses_an_export_from_an_unsupported_jax_with_how_to_re_export(tmp_path, capsys):
  directory = write_made_up_export(tmp_path / "old", calling_convention_version=3, jax_version="0.4.20")
  assert cli.main(["gdjax", "serve", str(directory), "--port", "1"]) == 2
  error = capsys.readouterr().err
  assert "gdjax serve: error:" in error and "jax 0.4.20" in error and "gdjax export --workdir" in error
  assert "Traceback" not in error


def test_serve_refuses_bad_options(exported, capsys):
  assert cli.main(["gdjax", "serve", str(exported.classifier), "--token", "short"]) == 2
  assert "at least 16 characters" in capsys.readouterr().err
  assert cli.main(["gdjax", "serve", "--max_queue_rows", "4"]) == 2
  assert "at least one export directory" in capsys.readouterr().err


def test_models_are_named_after_their_directory_or_by_name_equals_dir(exported):
  options = runtime.ServeOptions()
  assert set(runtime.load_models([exported.classifier, exported.gan], options)) == {"cnn", "cdcgan"}
  assert set(runtime.load_models([f"fashion={exported.classifier}"], options)) == {"fashion"}
  with pytest.raises(artifact.ArtifactError, match="NAME=DIR"):
    runtime.load_models([exported.classifier, f"cnn={exported.classifier}"], options)
