"""Evaluators found by name: the registry's checks, class coverage against NumPy, samples that do not depend on the batch."""

import jax
import ml_collections
import numpy as np
import pytest
import scipy.stats

from gdjax import evaluators, parallel, run_state, tasks
from gdjax.errors import ConfigError
from gdjax.evaluators import base, class_coverage
from gdjax.tasks import classifier, gan


class FakeBuilder:
  """Stands in for a TFDS builder of which only the class names and split sizes are read."""

  class info:  # noqa: N801
    features = {"label": type("ClassLabel", (), {"names": [f"class {k}" for k in range(10)]})()}

    class splits:  # noqa: N801
      def __class_getitem__(cls, split):
        return type("SplitInfo", (), {"num_examples": 6000})


def tiny_gan(conditional=False):
  config = gan.default_config()
  config.model.generator = dict(name="mlp_generator", hidden_sizes=(16,))
  config.model.discriminator = dict(name="mlp_discriminator", hidden_sizes=(16,))
  config.noise_dim = 8
  config.conditional = conditional
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh()
  return config, task, run_state.create_or_restore(task, mesh, image_shape=(28, 28, 1), seed=0)


class TestClassCoverage:
  def test_shares_smallest_share_and_entropy_against_numpy_and_scipy(self):
    predicted = np.array([0] * 50 + [1] * 30 + [2] * 15 + [7] * 5)
    metrics = class_coverage.class_coverage(predicted, 10)
    expected_shares = np.array([0.5, 0.3, 0.15, 0, 0, 0, 0, 0.05, 0, 0])
    np.testing.assert_allclose([metrics[f"class_share_{k}"] for k in range(10)], expected_shares)
    assert metrics["min_class_share"] == 0.0
    assert metrics["class_entropy"] == pytest.approx(scipy.stats.entropy(expected_shares))
    assert metrics["normalized_class_entropy"] == pytest.approx(scipy.stats.entropy(expected_shares) / np.log(10))

  def test_even_spread_has_the_largest_entropy_and_intended_class_accuracy_counts_matches(self):
    predicted = np.arange(1000) % 10
    intended = predicted.copy()
    intended[:100] = (intended[:100] + 1) % 10  # 100 of 1,000 samples land in another class.
    metrics = class_coverage.class_coverage(predicted, 10, intended)
    assert metrics["min_class_share"] == pytest.approx(0.1)
    assert metrics["normalized_class_entropy"] == pytest.approx(1.0)
    assert metrics["intended_class_accuracy"] == pytest.approx(0.9)


class TestRegistry:
  def context(self):
    return evaluators.EvalContext(parallel.make_data_mesh(), FakeBuilder(), workdir=None)

  def build(self, config, task):
    return evaluators.build_evaluators(task, config, self.context())

  def test_unknown_evaluator_type_is_refused_with_the_list(self):
    config = classifier.default_config()
    config.evals.classification.type = "accuracy_at_k"
    with pytest.raises(ConfigError, match=r"accuracy_at_k.*class_coverage.*classification"):
      self.build(config, tasks.build_task(config))

  def test_an_option_the_evaluator_does_not_take_is_refused(self):
    config, task, _ = tiny_gan()
    config.evals.coverage.split = "test"
    with pytest.raises(ConfigError, match=r"evals.coverage has option\(s\) \['split'\].*num_samples"):
      self.build(config, task)

  def test_an_evaluator_that_needs_what_the_task_lacks_is_refused(self):
    config = classifier.default_config()
    config.evals.coverage = ml_collections.ConfigDict(dict(type="class_coverage", every_steps=10))
    with pytest.raises(ConfigError, match=r"needs the inference function\(s\) \['sample'\].*offers \['predict'\]"):
      self.build(config, tasks.build_task(config))

  def test_cadence_and_the_last_step(self):
    config, task, _ = tiny_gan()
    config.eval_every_steps = 4
    config.evals.grid.every_steps = 6
    scheduled = {s.name: s for s in self.build(config, task)}
    assert [step for step in range(1, 11) if scheduled["quality"].is_due(step, 10)] == [4, 8, 10]
    assert [step for step in range(1, 11) if scheduled["grid"].is_due(step, 10)] == [6, 10]


class TestSamples:
  @pytest.mark.parametrize("conditional", [False, True])
  def test_a_sample_depends_on_its_seed_and_id_not_on_its_batch(self, conditional):
    _, task, run = tiny_gan(conditional)
    sample = base.compile_inference(task.inference_functions["sample"], run.mesh)
    params = task.inference_params(run.state)
    ids = np.arange(12, dtype=np.int32)
    batched = {"sample_ids": ids}
    if conditional:
      batched["labels"] = (ids * 7 % 10).astype(np.int32)
    whole = base.call_in_batches(sample, params, batched, batch_size=12, mesh=run.mesh, scalars={"seed": np.int32(-5)})
    small = base.call_in_batches(sample, params, batched, batch_size=4, mesh=run.mesh, scalars={"seed": np.int32(-5)})
    np.testing.assert_array_equal(whole["images"], small["images"])
    picked = {name: value[[9, 2]] for name, value in batched.items()}
    alone = base.call_in_batches(sample, params, picked, batch_size=4, mesh=run.mesh, scalars={"seed": np.int32(-5)})
    np.testing.assert_array_equal(alone["images"], whole["images"][[9, 2]])
    other_seed = base.call_in_batches(
      sample, params, batched, batch_size=12, mesh=run.mesh, scalars={"seed": np.int32(5)}
    )
    assert not np.array_equal(other_seed["images"], whole["images"])
    assert whole["images"].dtype == np.uint8 and whole["images"].shape == (12, 28, 28, 1)

  def test_one_device_and_four_draw_the_same_samples(self):
    _, task, run = tiny_gan()
    params = jax.device_get(task.inference_params(run.state))
    outputs = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = parallel.make_data_mesh(devices)
      sample = base.compile_inference(task.inference_functions["sample"], mesh)
      placed = jax.device_put(params, parallel.replicated_sharding(mesh))
      ids = {"sample_ids": np.arange(8, dtype=np.int32)}
      outputs.append(base.call_in_batches(sample, placed, ids, batch_size=8, mesh=mesh, scalars={"seed": np.int32(0)}))
    np.testing.assert_array_equal(outputs[0]["images"], outputs[1]["images"])


def test_a_conditional_generators_grid_has_one_class_per_row(tmp_path):
  """Each image is painted with its label's grey level; row r of the PNG must hold class r only."""
  from PIL import Image

  from gdjax.evaluators import sample_grid
  from gdjax.tasks.base import InferenceFunction, TensorSpec

  def paint_labels(params, inputs):
    del params
    grey = (inputs["labels"] * 20 + 10).astype(np.uint8)
    return {"images": np.broadcast_to(grey[:, None, None, None], (len(grey), 28, 28, 1)).copy()}

  inputs = {
    "seed": TensorSpec("int32", ()),
    "sample_ids": TensorSpec("int32", (-1,)),
    "labels": TensorSpec("int32", (-1,)),
  }
  sample = InferenceFunction(fn=paint_labels, inputs=inputs, outputs={"images": TensorSpec("uint8", (-1, 28, 28, 1))})
  context = evaluators.EvalContext(parallel.make_data_mesh(), FakeBuilder(), workdir=tmp_path)
  evaluator = sample_grid.Evaluator({"sample": sample}, context, num_samples=100, batch_size=50)
  evaluator.run(params={}, step=3)
  picture = np.asarray(Image.open(tmp_path / sample_grid.SAMPLES_DIR / "step_0000003.png"))
  scale, cell = 2, 30  # save_image_grid enlarges twice; each cell is 28 pixels plus 2 of padding.
  for row in range(10):
    for column in range(10):
      centre = picture[scale * (2 + row * cell + 14), scale * (2 + column * cell + 14)]
      assert centre == row * 20 + 10, (row, column, centre)
