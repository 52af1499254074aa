"""Naive Bayes as a gdjax task: its parameters, its predictions, its devices, its pass over the data.

Parameters are checked against NumPy (float64) formulas and predictions
against scikit-learn on small arrays; the fit is checked to be the same on 1
and 4 devices, under jit and pmap, after a preempted run resumes, and to count
every training example exactly once through the real pipeline and `gdjax
train`. Text (bag-of-words counts of a mock `imdb_reviews`) goes the same way.
"""

import json
import re
from collections import Counter

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import REPO

from gdjax import cli, data, loop, parallel, run_state, tasks
from gdjax.data import fashion_mnist_local
from gdjax.errors import ConfigError
from gdjax.tasks import naive_bayes

sklearn_naive_bayes = pytest.importorskip("sklearn.naive_bayes")

FEATURES = {"bernoulli": "binarized", "gaussian": "intensity", "multinomial": "counts"}
SHAPE = (2, 3, 1)  # Six features.


def small_config(kind, **overrides):
  config = naive_bayes.default_config()
  config.naive_bayes.kind = kind
  config.features = FEATURES[kind]
  config.input_shape = SHAPE
  config.num_classes = 3
  config.update_from_flattened_dict(overrides)
  return config


def small_data(n=44, seed=0):
  """uint8 images of three classes with different pixel statistics, every class present."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 3
  rng.shuffle(labels)
  centres = np.array([[40, 200, 90, 130, 20, 250], [220, 30, 140, 60, 200, 10], [128, 127, 250, 5, 90, 160]])
  images = np.clip(centres[labels] + rng.normal(0, 45, (n, 6)), 0, 255).astype(np.uint8)
  return images.reshape(n, *SHAPE), labels.astype(np.int32)


def fit(config, images, labels, *, batch_size=8, devices=None, parallelism="jit"):
  """The task's state after one masked pass over (images, labels) through `parallel.compile_train_step`."""
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh(devices)
  run = run_state.create_or_restore(task, mesh, image_shape=SHAPE, seed=0)
  step = parallel.compile_train_step(task, run.shapes, mesh, parallelism=parallelism)
  sharding, state = parallel.batch_sharding(mesh), run.state
  for start in range(0, len(labels), batch_size):
    batch = data.pad_batch(
      {"image": images[start : start + batch_size], "label": labels[start : start + batch_size]}, batch_size
    )
    batch = parallel.to_global_batch(batch, sharding, device_axis=parallelism == "pmap")
    state, metrics = step(state, batch, jax.random.key(0))
  return task, jax.device_get(state), jax.device_get(metrics)


def numpy_features(kind, images):
  x = images.reshape(len(images), -1).astype(np.float64)
  return {"bernoulli": (x / 255 > 0.5).astype(np.float64), "gaussian": x / 255, "multinomial": x}[kind]


class TestParametersAgainstNumPy:
  @pytest.mark.parametrize("kind", ["bernoulli", "gaussian", "multinomial"])
  def test_each_kind(self, kind):
    images, labels = small_data()
    alpha, var_smoothing = 0.5, 1e-3
    task, state, metrics = fit(
      small_config(kind, **{"naive_bayes.alpha": alpha, "naive_bayes.var_smoothing": var_smoothing}), images, labels
    )
    params = jax.device_get(jax.jit(task.inference_params)(state))
    x = numpy_features(kind, images)
    counts = np.bincount(labels, minlength=3).astype(np.float64)
    log_prior = np.log(counts / counts.sum())
    np.testing.assert_array_equal(state.class_count, counts)
    assert metrics["examples"] == len(labels) % 8  # The last, padded batch holds 44 - 5 x 8 examples.
    if kind == "bernoulli":
      p = np.stack([(x[labels == c].sum(0) + alpha) / (counts[c] + 2 * alpha) for c in range(3)])
      np.testing.assert_allclose(params["weights"], np.log(p / (1 - p)).T, rtol=1e-5)
      np.testing.assert_allclose(params["bias"], np.log(1 - p).sum(1) + log_prior, rtol=1e-5)
    elif kind == "multinomial":
      totals = np.stack([x[labels == c].sum(0) for c in range(3)]) + alpha
      np.testing.assert_allclose(params["weights"], np.log(totals / totals.sum(1, keepdims=True)).T, rtol=1e-5)
      np.testing.assert_allclose(params["bias"], log_prior, rtol=1e-5)
    else:
      mean = np.stack([x[labels == c].mean(0) for c in range(3)])
      variance = np.stack([x[labels == c].var(0) for c in range(3)]) + var_smoothing * x.var(0).max()
      np.testing.assert_allclose(params["mean"], mean, rtol=1e-5)
      np.testing.assert_allclose(params["variance"], variance, rtol=1e-4)
      np.testing.assert_allclose(params["log_prior"], log_prior, rtol=1e-5)

  def test_gaussian_moments_keep_their_precision_where_a_float32_sum_of_squares_cannot(self):
    """Values near 1000 with a spread of 0.01: E[x^2] - E[x]^2 in float32 is off by ~0.06; the merge is not."""
    rng = np.random.default_rng(1)
    labels = np.arange(48, dtype=np.int32) % 3
    values = (1000.0 + rng.normal(0, 0.01, (48, 6))).astype(np.float32)
    config = small_config("gaussian", features="counts", **{"naive_bayes.var_smoothing": 1e-12})
    task, state, _ = fit(config, values.reshape(48, *SHAPE), labels)
    expected = np.stack([values[labels == c].astype(np.float64).var(0) for c in range(3)])
    variance = np.asarray(state.statistics["m2"]) / np.asarray(state.class_count)[:, None]
    np.testing.assert_allclose(variance, expected, rtol=2e-2)
    naive = np.stack(
      [np.mean(np.square(values[labels == c]), 0) - np.square(np.mean(values[labels == c], 0)) for c in range(3)]
    )
    assert np.max(np.abs(naive - expected)) > 100 * np.max(np.abs(variance - expected))


class TestPredictionsAgainstScikitLearn:
  @pytest.mark.parametrize(
    "kind, estimator",
    [
      ("bernoulli", lambda: sklearn_naive_bayes.BernoulliNB(alpha=1.0)),
      ("gaussian", lambda: sklearn_naive_bayes.GaussianNB(var_smoothing=1e-2)),
      ("multinomial", lambda: sklearn_naive_bayes.MultinomialNB(alpha=1.0)),
    ],
  )
  def test_probabilities_equal_scikit_learns(self, kind, estimator):
    images, labels = small_data()
    test_images, _ = small_data(30, seed=1)
    config = small_config(kind, **{"naive_bayes.alpha": 1.0, "naive_bayes.var_smoothing": 1e-2})
    task, state, _ = fit(config, images, labels)
    outputs = jax.jit(task.predict)(task.inference_params(state), {"images": test_images})
    reference = estimator().fit(numpy_features(kind, images), labels)
    expected = reference.predict_proba(numpy_features(kind, test_images))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=2e-5)
    np.testing.assert_array_equal(outputs["labels"], reference.predict(numpy_features(kind, test_images)))


class TestDevices:
  @pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
  def test_one_and_four_devices_and_jit_and_pmap_fit_the_same_statistics(self, kind):
    images, labels = small_data()
    config = small_config(kind)
    _, one, _ = fit(config, images, labels, devices=jax.devices()[:1])
    _, four, _ = fit(config, images, labels, devices=jax.devices()[:4])
    _, pmapped, metrics = fit(config, images, labels, parallelism="pmap")
    assert int(one.step) == int(four.step) == int(pmapped.step) == 6
    assert np.sum(pmapped.class_count) == len(labels)
    for other in (four, pmapped):
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), one, other)


# --- Through `gdjax train`, the real pipeline and the fake Fashion-MNIST of conftest (256 training images).


def run_flags(local_dir, data_dir, **extra):
  flags = {
    "dataset.local_dir": local_dir,
    "dataset.data_dir": data_dir,
    "dataset.train_split": "train[:200]",
    "dataset.eval_split": "train[200:]",
    "dataset.subset_size": 200,
    "batch_size": 32,  # 200 = 6 x 32 + 8: the seventh batch is padded.
    "eval_batch_size": 32,
    "checkpoint.every_steps": 3,
    "log_every_steps": 1,
    "progress_bar": False,
  }
  flags.update(extra)
  return [f"--config.{k}={v}" for k, v in flags.items()]


def train(workdir, *flags, config="naive_bayes_bernoulli_fashion_mnist"):
  return cli.main(
    ["gdjax", "train", "--config", str(REPO / "configs" / f"{config}.py"), "--workdir", str(workdir), *flags]
  )


def final_state(workdir):
  _, run = run_state.restore_workdir(workdir)
  return jax.device_get(run.state)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir):
  workdir = tmp_path_factory.mktemp("naive_bayes")
  assert train(workdir, *run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir)) == 0
  return workdir


def training_split(local_dir, data_dir):
  """train[:200] as TFDS serves it (the local builder's order is not the IDX files')."""
  config = naive_bayes.default_config().dataset
  config.update(local_dir=str(local_dir), data_dir=str(data_dir))
  arrays = data.load_split(data.get_builder(config), "train[:200]", whole=True)
  return arrays["image"], arrays["label"]


class TestTraining:
  def test_every_example_is_counted_exactly_once(self, trained, fake_fashion_mnist_dir, fake_tfds_data_dir):
    images, labels = training_split(fake_fashion_mnist_dir, fake_tfds_data_dir)
    state = final_state(trained)
    assert int(state.step) == 7  # ceil(200 / 32), as total_steps follows from subset_size and batch_size.
    np.testing.assert_array_equal(state.class_count, np.bincount(labels, minlength=10))
    ones = np.stack([(images[labels == c].reshape(-1, 784) > 127).sum(0) for c in range(10)])
    np.testing.assert_array_equal(state.statistics["feature_sum"], ones)

  def test_eval_and_predict_work_on_its_workdir(self, trained, fake_fashion_mnist_dir, tmp_path):
    assert cli.main(["gdjax", "eval", "--workdir", str(trained), "--checkpoint", "best"]) == 0
    result = json.loads((trained / "eval_test.json").read_text())
    images, labels = fashion_mnist_local.load_split_arrays(fake_fashion_mnist_dir, "test")
    np.save(tmp_path / "x.npy", images)
    args = ["gdjax", "predict", "--workdir", str(trained), "--images", str(tmp_path / "x.npy"), "--out"]
    assert cli.main([*args, str(tmp_path / "p.npy")]) == 0
    predicted = np.load(tmp_path / "p.npy")
    assert result["classification/accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert result["classification/accuracy"] > 0.9  # The fake classes are bands of bright pixels.
    assert (trained / "checkpoints" / "7" / "state").is_dir()  # An Orbax checkpoint.

  def test_a_preempted_run_resumes_to_the_same_statistics(
    self, trained, tmp_path, monkeypatch, fake_fashion_mnist_dir, fake_tfds_data_dir
  ):
    monkeypatch.setattr(loop._PreemptionNotice, "reached", lambda self, step: step == 4)
    flags = run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir)
    assert train(tmp_path, *flags) == 0  # SIGTERM's path: saves step 4 and stops.
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())[-1] == 4
    monkeypatch.undo()
    assert train(tmp_path, *flags) == 0
    jax.tree.map(np.testing.assert_array_equal, final_state(tmp_path), final_state(trained))

  def test_a_subset_counts_exactly_its_examples(self, tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir):
    flags = run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, **{"dataset.subset_size": 30, "seed": 3})
    assert train(tmp_path, *flags, "--config.naive_bayes.kind=multinomial", "--config.features=counts") == 0
    images, labels = training_split(fake_fashion_mnist_dir, fake_tfds_data_dir)
    chosen = data.class_balanced_subset(labels, 30, seed=3)
    state = final_state(tmp_path)
    assert int(state.step) == 1
    np.testing.assert_array_equal(state.class_count, np.bincount(labels[chosen], minlength=10))
    sums = np.stack([images[chosen][labels[chosen] == c].reshape(-1, 784).sum(0) for c in range(10)])
    np.testing.assert_array_equal(state.statistics["feature_sum"], sums)


class TestBadConfigs:
  @pytest.mark.parametrize(
    "overrides, message",
    [
      ({"total_steps": 6}, r"that is 7 steps, and total_steps=6 would leave examples out\. Set --config.total_steps=7"),
      ({"total_steps": 8}, r"total_steps=8 would ask for batches after the last one"),
      ({"dataset.single_pass": False}, r"exactly once; set --config.dataset.single_pass=True"),
      ({"dataset.in_memory": False}, r"needs the in-memory pipeline"),
      ({"dataset.subset_size": 500}, r"subset_size=500, but the training split 'train\[:200\]' has 200 examples"),
      ({"naive_bayes.kind": "poisson"}, r"Unknown naive Bayes kind 'poisson'"),
      ({"naive_bayes.alpha": 0.0}, r"alpha=0.0: Laplace smoothing must be > 0"),
      ({"features": "pixel"}, r"Unknown features 'pixel'"),
    ],
  )
  def test_is_refused_with_a_message_and_nothing_written(
    self, overrides, message, tmp_path, capsys, fake_fashion_mnist_dir, fake_tfds_data_dir
  ):
    assert train(tmp_path / "work", *run_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, **overrides)) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
    assert not (tmp_path / "work").exists()

  def test_gaussian_needs_a_positive_variance_floor(self):
    with pytest.raises(ConfigError, match="var_smoothing=0.0: it must be > 0"):
      tasks.build_task(small_config("gaussian", **{"naive_bayes.var_smoothing": 0.0}))


@pytest.mark.parametrize("config_name", ["naive_bayes_bernoulli_fashion_mnist", "naive_bayes_gaussian_fashion_mnist"])
def test_each_config_runs_on_mock_data(config_name, tmp_path):
  flags = run_flags(tmp_path / "no_idx_files", tmp_path / "tfds", **{"dataset.subset_size": 48, "batch_size": 16})
  with tfds.testing.mock_data(num_examples=64):
    assert train(tmp_path / "work", *flags, config=config_name) == 0
  assert (tmp_path / "work" / "checkpoints" / "3").is_dir()


# --- Text: bag-of-words counts over a vocabulary of the training split, on a mock `imdb_reviews`.


def test_multinomial_naive_bayes_on_mock_imdb_reviews(tmp_path):
  flags = {
    "dataset.data_dir": tmp_path / "tfds",
    "dataset.train_split": "train",
    "dataset.eval_split": "test",
    "dataset.vocabulary_size": 12,
    "dataset.subset_size": 40,
    "batch_size": 16,
    "eval_batch_size": 16,
    "progress_bar": False,
  }
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    argv = [f"--config.{k}={v}" for k, v in flags.items()]
    assert train(tmp_path / "work", *argv, config="naive_bayes_multinomial_imdb") == 0
    assert cli.main(["gdjax", "eval", "--workdir", str(tmp_path / "work")]) == 0
    builder = tfds.builder("imdb_reviews", data_dir=str(tmp_path / "tfds"))
    examples = list(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)))
  texts = [e["text"].decode() for e in examples]
  labels = np.array([e["label"] for e in examples])
  counts = Counter(token for text in texts for token in re.findall(r"[a-z0-9']+", text.lower()))
  vocabulary = [token for token, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:12]]
  bags = np.array([[re.findall(r"[a-z0-9']+", t.lower()).count(word) for word in vocabulary] for t in texts])
  state = final_state(tmp_path / "work")
  np.testing.assert_array_equal(state.class_count, np.bincount(labels, minlength=2))
  np.testing.assert_array_equal(state.statistics["feature_sum"], np.stack([bags[labels == c].sum(0) for c in range(2)]))
  result = json.loads((tmp_path / "work" / "eval_test.json").read_text())
  assert result["classification/num_examples"] == 40
