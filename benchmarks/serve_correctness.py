"""Checks `gdjax serve` against `gdjax predict` and `gdjax sample` on trained workdirs, at batch sizes 1, 7 and 64.

Run from the repository root (serve extra):

  python -m benchmarks.serve_correctness --classifier_workdir W [--generator_workdir W ...] [--seed -3]

Each workdir is exported with `gdjax export` (a subprocess) and served by
one `gdjax serve` on 127.0.0.1. For each batch size the reference is the
command line itself: `gdjax predict --images X.npy --probs P.npy` on the
first images of the Fashion-MNIST test set (random pixels where the IDX
files are not on this machine), and `gdjax sample --num N --seed S` (a
conditional generator gets the classes in turn, its default). The served
V2 answers for the same inputs must match: probabilities within 1e-6 and
equal labels, samples within one grey level per pixel. The script prints
the largest differences and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.serve_load import LiveServer, machine_line

BATCH_SIZES = (1, 7, 64)
TEST_IMAGES = Path(os.environ.get("GDJAX_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")) / (
  "t10k-images-idx3-ubyte.gz"
)


def gdjax(*args: str) -> None:
  subprocess.run([sys.executable, "-m", "gdjax", *args], check=True, capture_output=True, text=True)


def test_set_images(n: int) -> tuple[np.ndarray, str]:
  if TEST_IMAGES.is_file():
    with gzip.open(TEST_IMAGES) as f:
      raw = np.frombuffer(f.read(), np.uint8, offset=16)
    return raw[: n * 784].reshape(n, 28, 28, 1), f"Fashion-MNIST test images ({TEST_IMAGES})"
  return np.random.default_rng(0).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), "random images"


def v2(name: str, value: np.ndarray, datatype: str) -> dict:
  return {"name": name, "shape": list(value.shape), "datatype": datatype, "data": value.ravel().tolist()}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--classifier_workdir", required=True)
  parser.add_argument("--generator_workdir", action="append", default=[])
  parser.add_argument("--seed", type=int, default=-3)
  args = parser.parse_args()
  scratch = Path(tempfile.mkdtemp(prefix="serve_correctness_"))
  workdirs = {"classifier": args.classifier_workdir}
  workdirs.update({f"generator{i}": w for i, w in enumerate(args.generator_workdir)})
  for name, workdir in workdirs.items():
    gdjax("export", "--workdir", workdir, "--out", str(scratch / name))
  images, described = test_set_images(max(BATCH_SIZES))
  failures = []
  print(machine_line())
  with LiveServer([scratch / name for name in workdirs]) as server:
    for batch in BATCH_SIZES:
      np.save(scratch / "images.npy", images[:batch])
      gdjax(
        "predict",
        "--workdir",
        args.classifier_workdir,
        "--images",
        str(scratch / "images.npy"),
        "--out",
        str(scratch / "labels.npy"),
        "--probs",
        str(scratch / "probs.npy"),
      )
      answer = server.post_json(
        "/v2/models/classifier/infer", json.dumps({"inputs": [v2("images", images[:batch], "UINT8")]}).encode()
      )
      served = {o["name"]: np.reshape(o["data"], o["shape"]) for o in answer["outputs"]}
      gap = float(np.abs(served["probabilities"] - np.load(scratch / "probs.npy")).max())
      same = bool(np.array_equal(served["labels"], np.load(scratch / "labels.npy")))
      print(
        f"classifier, the first {batch} {described}: max |served - gdjax predict| = {gap:.2e}; labels equal: {same}"
      )
      if gap > 1e-6 or not same:
        failures.append(f"classifier batch {batch}")
      for name, workdir in list(workdirs.items())[1:]:
        gdjax(
          "sample", "--workdir", workdir, "--num", str(batch), "--seed", str(args.seed), "--out", str(scratch / "s.npy")
        )
        metadata = json.loads((scratch / name / "gdjax_export.json").read_text())
        conditional = any(t["name"] == "labels" for t in metadata["functions"]["sample"]["inputs"])
        ids = np.arange(batch)
        inputs = [v2("seed", np.array([args.seed]), "INT64"), v2("sample_ids", ids, "INT64")]
        if conditional:
          inputs.append(v2("labels", ids % len(metadata["class_names"]), "INT64"))
        answer = server.post_json(f"/v2/models/{name}/infer", json.dumps({"inputs": inputs}).encode())
        served = np.reshape(answer["outputs"][0]["data"], answer["outputs"][0]["shape"])
        gap = int(np.abs(served - np.load(scratch / "s.npy").astype(int)).max())
        print(f"{Path(workdir).name}, batch {batch}, seed {args.seed}: max |served - gdjax sample| = {gap} grey levels")
        if gap > 1:
          failures.append(f"{name} batch {batch}")
  print("all checks pass" if not failures else f"FAILED: {failures}")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
