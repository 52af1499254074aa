"""gdjax export: artifacts that give `gdjax predict`'s and `gdjax sample`'s answers, load without gdjax, refuse foreign jax.

The reference values come from `inference.TrainedModel` on the workdir
(the code behind `gdjax predict` and `gdjax sample`, on 4 devices), never
from the artifact itself. The tiny models train on the fake dataset in
seconds; `exported_models` trains and exports them once for this file and
tests/test_serve.py.
"""

import dataclasses
import functools
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, gdjax_env

from gdjax import cli, inference
from gdjax.serving import artifact

BATCH_SIZES = (1, 7, 64)
SEED = -3  # Negative seeds are valid, as in `gdjax sample`.


@dataclasses.dataclass(frozen=True)
class Exported:
  classifier_workdir: Path
  classifier: Path  # Its export directory.
  gan_workdir: Path  # A conditional DCGAN.
  gan: Path


_CACHE: dict[str, Exported] = {}


def write_untrained_workdir(config_name: str, workdir: Path, idx_dir, tfds_dir, **fields) -> Path:
  """A workdir holding one checkpoint of `config_name` (with `fields` overridden) with random weights.

  Training is not what these tests check, and on 2 shared cores even a
  4-step run compiles for tens of seconds. Weights drawn from N(0, 0.2^2)
  (batch-norm variances from U(0.5, 1.5)) go through the same checkpoint,
  restore and inference code, with no compilation at all.
  """
  from gdjax import checkpoint, data, tasks

  spec = importlib.util.spec_from_file_location(config_name, REPO / "configs" / f"{config_name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.dataset.local_dir, config.dataset.data_dir = str(idx_dir), str(tfds_dir)
  for path, value in fields.items():
    *parents, leaf = path.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  builder = data.get_builder(config.dataset)
  config.input_shape = data.input_shape(builder, config.dataset)
  task = tasks.build_task(config)
  checkpoint.write_workdir_config(workdir, config)
  manager = checkpoint.open_manager(workdir)
  shapes = jax.eval_shape(functools.partial(task.init_state, image_shape=tuple(config.input_shape)), jax.random.key(0))
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    if not np.issubdtype(leaf.dtype, np.floating):
      return np.zeros(leaf.shape, leaf.dtype)
    if jax.tree_util.keystr(path).endswith("['var']"):
      return rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype)
    return (0.2 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

  checkpoint.save(manager, jax.tree_util.tree_map_with_path(draw, shapes), config, step=1)
  manager.wait_until_finished()
  manager.close()
  return workdir


def exported_models(tmp_path_factory, idx_dir, tfds_dir) -> Exported:
  """A tiny CNN classifier and a tiny conditional DCGAN, as workdirs and exports (made once per test run)."""
  if "models" not in _CACHE:
    root = tmp_path_factory.mktemp("serving_models")
    cnn = dict(**{"model.stage_widths": (4, 8), "model.dense_width": 16})
    write_untrained_workdir("cnn_fashion_mnist", root / "cnn_run", idx_dir, tfds_dir, **cnn)
    gan = {"model.generator.width": 4, "model.discriminator.width": 4, "noise_dim": 8}
    write_untrained_workdir("cdcgan_fashion_mnist", root / "gan_run", idx_dir, tfds_dir, **gan)
    for run, name in (("cnn_run", "cnn"), ("gan_run", "cdcgan")):
      assert cli.main(["gdjax", "export", "--workdir", str(root / run), "--out", str(root / "exports" / name)]) == 0
    _CACHE["models"] = Exported(root / "cnn_run", root / "exports/cnn", root / "gan_run", root / "exports/cdcgan")
  return _CACHE["models"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir):
  return exported_models(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir)


def test_images(n: int, seed: int = 0) -> np.ndarray:
  """Random pixels, plus an all-black and an all-white image: the extremes of the uint8 range."""
  images = np.random.default_rng(seed).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
  images[:1] = 0
  images[1:2] = 255
  return images


test_images.__test__ = False  # Test data, not a test.


@functools.cache
def trained_model(workdir: Path) -> inference.TrainedModel:
  return inference.TrainedModel(workdir)


def reference_predictions(workdir, images):
  """What `gdjax predict` computes."""
  return trained_model(workdir).predict(images)


def reference_samples(workdir, num):
  """What `gdjax sample --seed SEED --num num` draws (a conditional model gets the classes in turn)."""
  return trained_model(workdir).sample(num, seed=SEED)


class TestArtifacts:
  def test_metadata_records_the_contract_and_the_versions(self, exported):
    meta = json.loads((exported.gan / "gdjax_export.json").read_text())
    assert meta["task"] == "gan" and meta["config"]["conditional"] is True
    assert meta["jax_version"] == jax.__version__ and meta["serialization_version"] >= 1
    assert meta["calling_convention_version"] == jax.export.maximum_supported_calling_convention_version
    shipped = hashlib.sha256((REPO / "gdjax/assets/fashion_mnist_cnn.msgpack").read_bytes()).hexdigest()
    assert meta["feature_network"] == {"name": "fashion_mnist_cnn", "sha256": shipped}
    sample = meta["functions"]["sample"]
    assert {"cpu", "cuda"} <= set(sample["platforms"])
    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in sample["inputs"]}
    assert inputs == {"seed": ("INT64", [1]), "sample_ids": ("INT64", [-1]), "labels": ("INT64", [-1])}
    assert [(t["name"], t["datatype"], t["shape"]) for t in sample["outputs"]] == [("images", "UINT8", [-1, 28, 28, 1])]
    classify = json.loads((exported.classifier / "gdjax_export.json").read_text())["functions"]["classify"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in classify["inputs"]] == [
      ("images", "UINT8", [-1, 28, 28, 1])
    ]
    assert [(t["name"], t["datatype"], t["shape"]) for t in classify["outputs"]] == [
      ("probabilities", "FP32", [-1, 10]),
      ("labels", "INT64", [-1]),
    ]
    assert (exported.classifier / "weights.npz").is_file() and (exported.classifier / "load_model.py").is_file()

  @pytest.mark.parametrize("batch", BATCH_SIZES)
  def test_classify_equals_gdjax_predict(self, exported, batch):
    images = test_images(batch)
    expected = reference_predictions(exported.classifier_workdir, images)
    got = artifact.load(exported.classifier).functions["classify"](images=images)
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(got["labels"], expected["labels"])
    assert got["labels"].dtype == np.int64 and got["probabilities"].dtype == np.float32

  @pytest.mark.parametrize("batch", BATCH_SIZES)
  def test_sample_equals_gdjax_sample_within_one_grey_level(self, exported, batch):
    expected = reference_samples(exported.gan_workdir, batch)
    ids = np.arange(batch)
    got = artifact.load(exported.gan).functions["sample"](seed=[SEED], sample_ids=ids, labels=ids % 10)["images"]
    assert got.shape == (batch, 28, 28, 1) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1

  def test_a_sample_depends_on_its_seed_and_id_not_its_batch(self, exported):
    sample = artifact.load(exported.gan).functions["sample"]
    ids = np.array([5, 2, 9])
    alone = sample(seed=[SEED], sample_ids=ids[1:2], labels=ids[1:2] % 10)["images"]
    together = sample(seed=[SEED], sample_ids=ids, labels=ids % 10)["images"]
    assert np.abs(alone[0].astype(int) - together[1].astype(int)).max() <= 1
    other_seed = sample(seed=[SEED + 1], sample_ids=ids, labels=ids % 10)["images"]
    assert np.abs(other_seed.astype(int) - together.astype(int)).max() > 10

  def test_inputs_outside_the_contract_are_refused_with_a_message(self, exported):
    sample = artifact.load(exported.gan).functions["sample"]
    with pytest.raises(artifact.ContractError, match=r"labels.*\[0, 9\]"):
      sample(seed=[0], sample_ids=[0], labels=[10])
    with pytest.raises(artifact.ContractError, match=r"seed.*\[-2147483648, 2147483647\]"):
      sample(seed=[2**31], sample_ids=[0], labels=[0])
    with pytest.raises(artifact.ContractError, match="missing"):
      sample(seed=[0], sample_ids=[0])
    classify = artifact.load(exported.classifier).functions["classify"]
    with pytest.raises(artifact.ContractError, match="UINT8"):
      classify(images=np.zeros((1, 28, 28, 1), np.float32))
    with pytest.raises(artifact.ContractError, match="shape"):
      classify(images=np.zeros((1, 28, 28), np.uint8))


STANDALONE = textwrap.dedent(
  """
  import importlib.abc, sys

  class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
      if name.split(".")[0] in ("gdjax", "flax", "tensorflow", "optax", "orbax", "ml_collections"):
        raise ImportError(f"an exported model must not need {name}")

  sys.meta_path.insert(0, Refuse())
  import importlib.util
  import numpy as np

  for directory, inputs, out in zip(*[iter(sys.argv[1:])] * 3):  # (export, inputs, outputs) triples.
    spec = importlib.util.spec_from_file_location("load_model", f"{directory}/load_model.py")
    load_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_model)
    model = load_model.load(directory)
    (name, function), = model.functions.items()
    given = dict(np.load(inputs))
    np.savez(out, **function(**given))
  assert not {"gdjax", "flax", "tensorflow"} & {m.split(".")[0] for m in sys.modules}
  """
)


def test_an_export_runs_with_jax_and_numpy_alone(exported, tmp_path):
  given = {
    exported.classifier: {"images": test_images(7)},
    exported.gan: {"seed": np.array([SEED]), "sample_ids": np.arange(7), "labels": np.arange(7) % 10},
  }
  arguments = []
  for directory, inputs in given.items():
    copy = shutil.copytree(directory, tmp_path / directory.name)  # Anywhere, away from the repository.
    np.savez(tmp_path / f"{directory.name}_in.npz", **inputs)
    arguments += [str(copy), str(tmp_path / f"{directory.name}_in.npz"), str(tmp_path / f"{directory.name}_out.npz")]
  result = subprocess.run(
    [sys.executable, "-I", "-c", STANDALONE, *arguments],
    cwd=tmp_path,
    env=gdjax_env(devices=1),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  with np.load(tmp_path / f"{exported.classifier.name}_out.npz") as got:
    expected = reference_predictions(exported.classifier_workdir, given[exported.classifier]["images"])
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(got["labels"], expected["labels"])
  with np.load(tmp_path / f"{exported.gan.name}_out.npz") as got:
    assert np.abs(got["images"].astype(int) - reference_samples(exported.gan_workdir, 7).astype(int)).max() <= 1


def write_made_up_export(directory: Path, **metadata_overrides) -> Path:
  """A small export by hand: `y = x * w` for float32 rows, with the metadata `gdjax export` writes."""
  directory.mkdir(parents=True)
  (batch,) = jax.export.symbolic_shape("batch")
  exported = jax.export.export(jax.jit(lambda w, x: {"y": x["x"] * w[0][None, :]}), platforms=("cpu",))(
    [jax.ShapeDtypeStruct((3,), jnp.float32)], {"x": jax.ShapeDtypeStruct((batch, 3), jnp.float32)}
  )
  raw = exported.serialize()
  (directory / "scale.jax_exported").write_bytes(raw)
  np.savez(directory / "weights.npz", w=np.array([1.0, 2.0, 3.0], np.float32))

  metadata = {
    "format": "gdjax-export",
    "format_version": 1,
    "workdir": "/runs/made_up",
    "created": "2026-01-01T00:00:00+00:00",
    "jax_version": jax.__version__,
    "jaxlib_version": jax.__version__,
    "serialization_version": artifact.serialization_version(),
    "calling_convention_version": exported.calling_convention_version,
    "weights": {
      "file": "weights.npz",
      "sha256": hashlib.sha256((directory / "weights.npz").read_bytes()).hexdigest(),
      "names": ["w"],
    },
    "functions": {
      "scale": {
        "artifact": "scale.jax_exported",
        "artifact_sha256": hashlib.sha256(raw).hexdigest(),
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3], "artifact_dtype": "float32"}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3], "artifact_dtype": "float32"}],
      }
    },
    **metadata_overrides,
  }
  (directory / "gdjax_export.json").write_text(json.dumps(metadata))
  return directory


class TestVersions:
  def test_the_made_up_export_loads_with_this_jax(self, tmp_path):
    model = artifact.load(write_made_up_export(tmp_path / "ok"))
    np.testing.assert_array_equal(model.functions["scale"](x=[[1.0, 1.0, 1.0]])["y"], [[1.0, 2.0, 3.0]])

  @pytest.mark.parametrize(
    "overrides, reason",
    [
      ({"calling_convention_version": 3, "jax_version": "0.4.20", "jaxlib_version": "0.4.20"}, "calling convention 3"),
      ({"calling_convention_version": 99, "jax_version": "9.1.0", "jaxlib_version": "9.1.0"}, "calling convention 99"),
      ({"serialization_version": 999, "jax_version": "9.1.0", "jaxlib_version": "9.1.0"}, "serialization version 999"),
    ],
  )
  def test_an_unsupported_version_is_refused_with_who_made_it_and_how_to_re_export(self, tmp_path, overrides, reason):
    directory = write_made_up_export(tmp_path / "foreign", **overrides)
    with pytest.raises(artifact.ArtifactVersionError) as error:
      artifact.load(directory)
    message = str(error.value)
    assert f"jax {overrides['jax_version']}" in message and reason in message
    assert f"this is jax {jax.__version__}" in message and "compatibility window" in message
    assert "gdjax export --workdir /runs/made_up --out" in message

  def test_a_corrupt_artifact_is_refused_not_deserialized(self, tmp_path):
    directory = write_made_up_export(tmp_path / "corrupt")
    raw = bytearray((directory / "scale.jax_exported").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (directory / "scale.jax_exported").write_bytes(raw)
    with pytest.raises(artifact.ArtifactError, match="does not match the SHA-256"):
      artifact.load(directory)


@pytest.mark.serve  # TensorFlow's SavedModel export and load take seconds: this runs in the serving step.
def test_saved_model_gives_the_same_answers_in_tensorflow(exported, tmp_path):
  import tensorflow as tf

  for workdir, name in ((exported.classifier_workdir, "cnn"), (exported.gan_workdir, "cdcgan")):
    out = tmp_path / name
    assert cli.main(["gdjax", "export", "--workdir", str(workdir), "--out", str(out), "--format", "saved_model"]) == 0
    loaded = tf.saved_model.load(str(out / "saved_model"))
    serve = loaded.signatures["serving_default"]
    if name == "cnn":
      images = test_images(7)
      expected = reference_predictions(workdir, images)
      got = serve(images=tf.constant(images))
      np.testing.assert_allclose(got["probabilities"].numpy(), expected["probabilities"], atol=1e-5, rtol=0)
      np.testing.assert_array_equal(got["labels"].numpy(), expected["labels"])
      assert got["labels"].dtype == tf.int64
    else:
      ids = np.arange(7)
      got = serve(
        seed=tf.constant([SEED], tf.int64),
        sample_ids=tf.constant(ids, tf.int64),
        labels=tf.constant(ids % 10, tf.int64),
      )
      assert np.abs(got["images"].numpy().astype(int) - reference_samples(workdir, 7).astype(int)).max() <= 1
      with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be <= 9"):
        serve(
          seed=tf.constant([0], tf.int64), sample_ids=tf.constant([0], tf.int64), labels=tf.constant([10], tf.int64)
        )


def test_export_refuses_to_overwrite_a_directory_that_is_not_an_export(exported, tmp_path, capsys):
  (tmp_path / "notes.txt").write_text("mine")
  assert cli.main(["gdjax", "export", "--workdir", str(exported.classifier_workdir), "--out", str(tmp_path)]) == 2
  assert "is not an earlier gdjax export" in capsys.readouterr().err
  assert (tmp_path / "notes.txt").read_text() == "mine"
