"""Logistic regression, the discriminative twin: the linear classifier fitted by full-batch L-BFGS as scikit-learn fits it.

scikit-learn's LogisticRegression minimises C * sum(CE) + |W|^2 / 2 over N
examples; gdjax's classifier minimises mean(CE) + lambda |W|^2 / 2. With
lambda = 1 / (C N) they have the same minimiser, which optax's L-BFGS
reaches on a small problem: the weights and probabilities must agree.
"""

from pathlib import Path

import jax
import numpy as np
import pytest

from gdjax import parallel, run_state, tasks
from gdjax.errors import ConfigError
from gdjax.tasks import classifier

sklearn_linear_model = pytest.importorskip("sklearn.linear_model")
SHAPE = (2, 3, 1)


def logistic_regression_config(features, C, n):  # noqa: N803 (scikit-learn's name)
  config = classifier.default_config()
  config.model = dict(name="linear", num_classes=3)
  config.features = features
  config.l2_regularization = 1.0 / (C * n)
  config.optimizer = dict(name="lbfgs", learning_rate=1.0)
  config.schedule = dict(name="constant")
  config.input_shape = SHAPE
  return config


def small_data(n=60, seed=0):
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 3).astype(np.int32)
  centres = np.array([[60, 200, 90, 130, 20, 250], [200, 50, 140, 60, 200, 10], [128, 127, 250, 5, 90, 160]])
  images = np.clip(centres[labels] + rng.normal(0, 70, (n, 6)), 0, 255).astype(np.uint8)
  return images.reshape(n, *SHAPE), labels


def test_full_batch_lbfgs_reaches_scikit_learns_weights_and_probabilities():
  features, C = "intensity", 0.5
  images, labels = small_data()
  config = logistic_regression_config(features, C, len(labels))
  task = tasks.build_task(config)
  mesh = parallel.make_data_mesh(jax.devices()[:4])
  run = run_state.create_or_restore(task, mesh, image_shape=SHAPE, seed=0)
  step = parallel.compile_train_step(task, run.shapes, mesh)
  batch = parallel.to_global_batch({"image": images, "label": labels}, parallel.batch_sharding(mesh))
  state = run.state
  for _ in range(25):
    state, metrics = step(state, batch, jax.random.key(0))
  x = images.reshape(len(labels), -1) / 255.0
  reference = sklearn_linear_model.LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(x, labels)
  params = jax.device_get(state.params)["Dense_0"]
  np.testing.assert_allclose(params["kernel"], reference.coef_.T, atol=2e-3)
  probabilities = jax.jit(task.predict)(task.inference_params(state), {"images": images})["probabilities"]
  np.testing.assert_allclose(probabilities, reference.predict_proba(x), atol=1e-3)
  assert bool(metrics[parallel.FINITE_METRIC])


def test_lbfgs_under_pmap_is_refused_with_a_message():
  config = logistic_regression_config("intensity", 1.0, 60)
  config.parallelism = "pmap"
  with pytest.raises(ConfigError, match="use --config.parallelism=jit"):
    tasks.build_task(config)


def test_learning_curve_sweeps_plan_the_same_log_spaced_subsets_for_both_pairs(tmp_path):
  """Every planned run's config, as `gdjax train` parses it, trains on the subset its grid names."""
  from conftest import REPO

  from gdjax.sweep import plan, spec

  planned = {}
  for name in ("learning_curves_naive_bayes", "learning_curves_logistic_regression"):
    runs = plan.plan_runs(spec.load_sweep(REPO / "configs" / "sweeps" / f"{name}.py"), tmp_path / name)
    planned[name] = runs
    sizes = sorted({r.setting["dataset.subset_size"] for r in runs})
    assert len(sizes) >= 8 and sizes[0] == 10 and sizes[-1] == 54_000
    ratios = np.diff(np.log(sizes))
    np.testing.assert_allclose(ratios, ratios.mean(), atol=0.01)  # Log-spaced.
    assert sorted({r.seed for r in runs}) == [0, 1, 2, 3, 4]
  for run in planned["learning_curves_logistic_regression"]:
    if run.seed or run.setting["dataset.subset_size"] not in (10, 54_000):
      continue
    texts = dict(a[len("--config.") :].split("=", 1) for a in run.train_command if a.startswith("--config."))
    config = plan.parse_flags(Path(run.config), texts, where=run.run_id)
    n, c = run.setting["dataset.subset_size"], run.setting["C"]
    assert config.batch_size == config.dataset.subset_size == n  # Full batch on the subset.
    assert config.l2_regularization == pytest.approx(1.0 / (c * n))  # scikit-learn's C, for this n.
