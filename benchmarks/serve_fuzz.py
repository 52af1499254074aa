"""Fuzzes a live `gdjax serve` with malformed and hostile requests; each must get a 4xx and the server must stay up.

Run from the repository root (serve and test extras), with an export of a
classifier and of a conditional generator:

  python -m benchmarks.serve_fuzz --classifier EXPORT_DIR --generator EXPORT_DIR [--examples 1500]

It starts `gdjax serve` on 127.0.0.1 (a free port), lets `hypothesis` draw
`--examples` requests, every one malformed by construction (strategies
below), sends each and requires a 4xx. It reports the counts by status, the
server's resident set before and after, and whether a correct request then
gets the same answer as before the campaign. `tests/test_serve.py` runs the
same strategies in-process, briefly.

Every strategy draws a request that no valid request can be: random bytes
or JSON that is no V2 request; a valid V2 request with exactly one thing
broken (a name, datatype, shape, data length, value type, range, a missing
or duplicated input, an unknown output, a non-string id); hostile texts
(4,000-digit integers, NaN, nesting 100,000 deep); PNGs that are truncated,
corrupt, of the wrong size or mode, animated or decompression bombs; a
wrong content type; bad query strings; unknown models; bodies over the
server's size limit.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import time
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

IMAGE = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
V2_TYPES = ["BOOL", "UINT8", "UINT16", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES"]


def classify_request() -> dict:
  return {"inputs": [{"name": "images", "shape": [1, 28, 28, 1], "datatype": "UINT8", "data": IMAGE.ravel().tolist()}]}


def sample_request(num: int = 3) -> dict:
  return {
    "inputs": [
      {"name": "seed", "shape": [1], "datatype": "INT64", "data": [-7]},
      {"name": "sample_ids", "shape": [num], "datatype": "INT64", "data": list(range(num))},
      {"name": "labels", "shape": [num], "datatype": "INT64", "data": [i % 10 for i in range(num)]},
    ]
  }


def png_bytes(image: np.ndarray | Image.Image, **save) -> bytes:
  buffer = io.BytesIO()
  (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="PNG", **save)
  return buffer.getvalue()


def animated_png() -> bytes:
  frames = [Image.fromarray(IMAGE), Image.fromarray(255 - IMAGE)]
  return png_bytes(frames[0], save_all=True, append_images=frames[1:])


def _chunk(kind: bytes, payload: bytes) -> bytes:
  return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(side: int) -> bytes:
  """A valid PNG header claiming side x side greyscale pixels, with a tiny highly-compressible first row."""
  header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
  rows = zlib.compress(b"\x00" * (side + 1) * 4)
  return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
  JSON_SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
)
NOT_AN_INT = (
  st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x))
  | st.booleans()
  | st.text(max_size=5)
  | st.none()
  | st.lists(st.integers(), max_size=2, min_size=2)
)


@st.composite
def broken_v2(draw, model: str):
  """A valid V2 request for `model` ("cnn" classifier or "gen" generator) with exactly one thing broken."""
  request = classify_request() if model == "cnn" else sample_request(draw(st.integers(1, 4)))
  tensors = request["inputs"]
  index = draw(st.integers(0, len(tensors) - 1))
  tensor = tensors[index]
  names = [t["name"] for t in tensors]
  kind = draw(
    st.sampled_from(
      ["name", "datatype", "shape", "length", "type", "range", "missing", "duplicate", "inputs", "id", "outputs"]
    )
  )
  if kind == "name":
    tensor["name"] = draw(
      st.text(max_size=12).filter(lambda n: n not in names) | JSON_SCALARS.filter(lambda v: not isinstance(v, str))
    )
  elif kind == "datatype":
    tensor["datatype"] = draw(
      st.sampled_from(V2_TYPES).filter(lambda t: t != tensor["datatype"]) | st.text(max_size=8) | JSON_SCALARS
    )
  elif kind == "shape":
    tensor["shape"] = draw(
      st.lists(st.integers(-3, 40), max_size=5).filter(lambda s: s != tensor["shape"])
      | JSON_VALUES.filter(lambda s: not isinstance(s, list))
    )
  elif kind == "length":
    extra = draw(st.integers(1, 5))
    tensor["data"] = (
      tensor["data"][:-extra] if draw(st.booleans()) and len(tensor["data"]) > extra else tensor["data"] + [0] * extra
    )
  elif kind == "type":
    position = draw(st.integers(0, len(tensor["data"]) - 1))
    tensor["data"][position] = draw(NOT_AN_INT | st.integers(2**63, 2**200) | st.integers(-(2**200), -(2**63) - 1))
  elif kind == "range":
    position = draw(st.integers(0, len(tensor["data"]) - 1))
    low, high = {"images": (0, 255), "seed": (-(2**31), 2**31 - 1), "sample_ids": (0, 2**31 - 1), "labels": (0, 9)}[
      tensor["name"]
    ]
    tensor["data"][position] = draw(st.integers(high + 1, 2**62) | st.integers(-(2**62), low - 1))
  elif kind == "missing":
    del tensors[index]
  elif kind == "duplicate":
    tensors.append(dict(tensor))
  elif kind == "inputs":
    request["inputs"] = draw(JSON_VALUES.filter(lambda v: not isinstance(v, list)))
  elif kind == "id":
    request["id"] = draw(
      JSON_VALUES.filter(lambda v: not isinstance(v, str) and v is not None) | st.text(min_size=257, max_size=300)
    )
  else:
    request["outputs"] = draw(
      st.lists(
        st.fixed_dictionaries(
          {"name": st.text(max_size=8).filter(lambda n: n not in ("labels", "probabilities", "images"))}
        ),
        min_size=1,
        max_size=2,
      )
      | JSON_SCALARS.filter(lambda v: v is not None)
    )
  return json.dumps(request).encode()


def hostile_texts() -> list[bytes]:
  valid = json.dumps(sample_request(1))
  return [
    valid.replace("-7", "1" * 5000).encode(),  # Over Python's 4,300-digit limit: its parser raises.
    valid.replace("-7", "NaN").encode(),
    valid.replace("-7", "-Infinity").encode(),
    valid.replace("-7", str(2**80)).encode(),
    b"[" * 100_000,
    b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"inputs": [{"name": "\xff\xfe", "shape": [1]}]}',
    valid[: len(valid) // 2].encode(),
  ]


def bad_pngs() -> list[bytes]:
  good = png_bytes(IMAGE)
  flipped = bytearray(good)
  flipped[len(good) // 2] ^= 0x55
  return [
    good[: len(good) // 2],
    good[:20],
    bytes(flipped),
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    png_bytes(np.zeros((32, 32), np.uint8)),
    png_bytes(np.zeros((28, 28, 3), np.uint8)),
    png_bytes(np.zeros((28, 28, 4), np.uint8)),
    png_bytes(Image.new("LA", (28, 28))),
    png_bytes(np.zeros((28, 28), np.uint16)),  # 16-bit greyscale.
    png_bytes(Image.new("1", (28, 28))),
    png_bytes(Image.fromarray(IMAGE).convert("P")),
    animated_png(),
    bomb_png(60_000),
    bomb_png(28_001),
    bomb_png(9_000),  # Under Pillow's own bomb limit: refused by its size, before a pixel is read.
    good.replace(b"IHDR", b"IHDX"),
    b"GIF89a" + good[6:],
  ]


@st.composite
def hostile_request(draw, *, classifier: str, generator: str, body_limit: int):
  """(method, path, headers, body) of one request that must get a 4xx."""
  json_type = {"content-type": "application/json"}
  infer = {"cnn": f"/v2/models/{classifier}/infer", "gen": f"/v2/models/{generator}/infer"}
  kinds = ["bytes", "json", "broken", "broken", "broken", "hostile", "png", "content_type", "query", "model"]
  kind = draw(st.sampled_from([*kinds, "oversized"]))
  if kind == "oversized":  # Valid JSON, one byte or more over the server's --max_body_bytes.
    padding = body_limit + 1 - len(json.dumps(classify_request())) + draw(st.integers(0, 4096))
    body = json.dumps(classify_request())[:-1].encode() + b" " * padding + b"}"
    return "POST", infer["cnn"], json_type, body
  if kind == "bytes":
    body = draw(st.binary(max_size=3000))
    return "POST", infer[draw(st.sampled_from(["cnn", "gen"]))], json_type, body
  if kind == "json":
    return "POST", infer[draw(st.sampled_from(["cnn", "gen"]))], json_type, json.dumps(draw(JSON_VALUES)).encode()
  if kind == "broken":
    model = draw(st.sampled_from(["cnn", "gen"]))
    return "POST", infer[model], json_type, draw(broken_v2(model))
  if kind == "hostile":
    return "POST", infer["gen"], json_type, draw(st.sampled_from(hostile_texts()))
  if kind == "png":
    return "POST", f"/models/{classifier}/classify", {"content-type": "image/png"}, draw(st.sampled_from(bad_pngs()))
  if kind == "content_type":
    choice = draw(
      st.sampled_from(["text/plain", "image/png", "application/x-www-form-urlencoded", "multipart/form-data"])
    )
    if choice == "image/png":
      return "POST", infer["cnn"], {"content-type": choice}, json.dumps(classify_request()).encode()
    path = draw(st.sampled_from([infer["cnn"], f"/models/{classifier}/classify"]))
    body = png_bytes(IMAGE) if path.endswith("classify") else json.dumps(classify_request()).encode()
    return "POST", path, {"content-type": choice}, body
  if kind == "query":
    query = draw(
      st.sampled_from(
        [
          "num=0",
          "num=100000",
          "num=-1",
          "seed=abc",
          f"seed={2**31}",
          "seed=1e3",
          "labels=0,10",
          "labels=a",
          "labels=-1",
          "bogus=1",
          "num=3&labels=3,,4",
        ]
      )
    )
    return "GET", f"/models/{generator}/samples.png?{query}", {}, b""
  name = draw(
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=20).filter(
      lambda n: n not in (classifier, generator)
    )
  )
  return "POST", f"/v2/models/{name}/infer", json_type, json.dumps(classify_request()).encode()


def run_campaign(send, *, classifier: str, generator: str, examples: int, body_limit: int) -> dict:
  """Draws `examples` hostile requests and sends each with `send(method, path, headers, body) -> status`.

  Returns the count of requests by status; raises AssertionError (after
  hypothesis shrinks it) on the first one that is not a 4xx.
  """
  counts: dict[int, int] = {}

  @settings(
    max_examples=examples,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
  )
  @given(hostile_request(classifier=classifier, generator=generator, body_limit=body_limit))
  def check(request):
    status = send(*request)
    counts[status] = counts.get(status, 0) + 1
    assert 400 <= status < 500, f"{request[0]} {request[1]} {request[3][:200]!r} got {status}"

  check()  # derandomize=True: the same requests on every run.
  return counts


def main() -> None:
  import http.client

  from benchmarks.serve_load import LiveServer, machine_line

  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--classifier", required=True)
  parser.add_argument("--generator", required=True)
  parser.add_argument("--examples", type=int, default=1500)
  args = parser.parse_args()
  from pathlib import Path

  classifier, generator = Path(args.classifier).name, Path(args.generator).name
  body_limit = 256 * 1024
  flags = ["--max_batch_size", "16", "--max_body_bytes", str(body_limit)]
  with LiveServer([args.classifier, args.generator], *flags) as server:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def send(method, path, headers, body):
      connection.request(method, path, body=body or None, headers=headers)
      response = connection.getresponse()
      response.read()
      if response.getheader("connection", "").lower() == "close":
        connection.close()
      return response.status

    probe = json.dumps(sample_request(3)).encode()
    before_answer = server.post_json(f"/v2/models/{generator}/infer", probe)
    rss_before = server.rss_kib()
    start = time.perf_counter()
    counts = run_campaign(
      send, classifier=classifier, generator=generator, examples=args.examples, body_limit=body_limit
    )
    seconds = time.perf_counter() - start
    rss_after = server.rss_kib()
    after_answer = server.post_json(f"/v2/models/{generator}/infer", probe)
    alive = server.process.poll() is None
  print(f"{machine_line()}")
  print(f"{sum(counts.values())} hostile requests in {seconds:.1f} s; by status: {dict(sorted(counts.items()))}")
  print(f"server RSS before {rss_before / 1024:.1f} MiB, after {rss_after / 1024:.1f} MiB; still up: {alive}")
  print(f"a correct request afterwards gets the same answer as before: {after_answer == before_answer}")


if __name__ == "__main__":
  main()
