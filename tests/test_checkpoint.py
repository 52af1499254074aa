"""Orbax checkpoints: retention (last K plus the best), restore across shardings."""

import asyncio
import sys
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gdjax import checkpoint, parallel
from gdjax.errors import CheckpointError


def state_at(step):
  return {"step": jnp.array(step), "w": jnp.full((8, 3), float(step))}


def test_keeps_last_k_and_the_best(tmp_path):
  config = ml_collections.ConfigDict({"task": "classifier"})
  manager = checkpoint.open_manager(tmp_path, keep_last=2, keep_best=True, best_metric="accuracy", best_mode="max")
  accuracies = {1: 0.5, 2: 0.9, 3: 0.6, 4: 0.7, 5: 0.65}
  for step, accuracy in accuracies.items():
    checkpoint.save(manager, state_at(step), config, step=step, metrics={"accuracy": accuracy})
  manager.wait_until_finished()
  assert sorted(manager.all_steps()) == [2, 4, 5]
  assert checkpoint.best_step(manager, "accuracy", "max") == 2
  manager.close()
  # A resumed run reads the metrics back from disk and still keeps the best.
  manager = checkpoint.open_manager(tmp_path, keep_last=2, keep_best=True, best_metric="accuracy", best_mode="max")
  for step, accuracy in {6: 0.1, 7: 0.2}.items():
    checkpoint.save(manager, state_at(step), config, step=step, metrics={"accuracy": accuracy})
  manager.wait_until_finished()
  assert sorted(manager.all_steps()) == [2, 6, 7]
  assert checkpoint.best_step(manager, "accuracy", "max") == 2
  manager.close()


def test_keeps_lowest_loss_in_min_mode(tmp_path):
  config = ml_collections.ConfigDict({"task": "classifier"})
  manager = checkpoint.open_manager(tmp_path, keep_last=1, keep_best=True, best_metric="loss", best_mode="min")
  for step, loss in {1: 0.5, 2: 0.1, 3: 0.3, 4: 0.4}.items():
    checkpoint.save(manager, state_at(step), config, step=step, metrics={"loss": loss})
  manager.wait_until_finished()
  assert sorted(manager.all_steps()) == [2, 4]
  assert checkpoint.best_step(manager, "loss", "min") == 2
  manager.close()


def test_saved_on_four_devices_restores_on_one(tmp_path):
  config = ml_collections.ConfigDict({"task": "classifier"})
  mesh4 = parallel.make_data_mesh(jax.devices()[:4])
  state = jax.device_put(state_at(7), parallel.replicated_sharding(mesh4))
  manager = checkpoint.open_manager(tmp_path)
  checkpoint.save(manager, state, config, step=7)
  manager.wait_until_finished()
  mesh1 = parallel.make_data_mesh(jax.devices()[:1])
  shapes = jax.eval_shape(lambda: state_at(0))
  restored = checkpoint.restore(manager, checkpoint.abstract_with_sharding(shapes, parallel.replicated_sharding(mesh1)))
  np.testing.assert_array_equal(restored["w"], np.full((8, 3), 7.0))
  assert restored["w"].sharding.device_set == {jax.devices()[0]}
  manager.close()


def test_saved_on_one_device_restores_on_four(tmp_path):
  config = ml_collections.ConfigDict({"task": "classifier"})
  mesh1 = parallel.make_data_mesh(jax.devices()[:1])
  manager = checkpoint.open_manager(tmp_path)
  checkpoint.save(manager, jax.device_put(state_at(5), parallel.replicated_sharding(mesh1)), config, step=5)
  manager.wait_until_finished()
  mesh4 = parallel.make_data_mesh(jax.devices()[:4])
  shapes = jax.eval_shape(lambda: state_at(0))
  restored = checkpoint.restore(manager, checkpoint.abstract_with_sharding(shapes, parallel.replicated_sharding(mesh4)))
  np.testing.assert_array_equal(restored["w"], np.full((8, 3), 5.0))
  assert restored["w"].sharding.device_set == set(jax.devices()[:4])
  manager.close()


def test_unreadable_newest_checkpoint_falls_back_and_is_moved_aside(tmp_path, caplog):
  config = ml_collections.ConfigDict({"task": "classifier"})
  manager = checkpoint.open_manager(tmp_path)
  for step in (1, 2, 3):
    checkpoint.save(manager, state_at(step), config, step=step)
  manager.wait_until_finished()
  for path in (tmp_path / "checkpoints" / "3" / "state").rglob("*"):
    if path.is_file() and path.stat().st_size > 100:
      path.write_bytes(b"")  # Truncated to nothing.
  shapes = jax.eval_shape(lambda: state_at(0))
  restored = checkpoint.restore_latest(manager, shapes)
  assert int(restored["step"]) == 2
  assert "The checkpoint at step 3 " in caplog.text and "Resumed from step 2 instead of step 3" in caplog.text
  assert sorted(manager.all_steps()) == [1, 2] and (tmp_path / "checkpoints_unreadable" / "3").is_dir()
  manager.close()


def test_checkpoints_that_do_not_fit_are_all_left_in_place(tmp_path):
  config = ml_collections.ConfigDict({"task": "classifier"})
  manager = checkpoint.open_manager(tmp_path)
  for step in (1, 2):
    checkpoint.save(manager, state_at(step), config, step=step)
  manager.wait_until_finished()
  other = {"step": jax.ShapeDtypeStruct((), jnp.int32), "v": jax.ShapeDtypeStruct((2,), jnp.float32)}
  with pytest.raises(CheckpointError, match=r"None of the checkpoints .* \(steps 2, 1\) could be restored"):
    checkpoint.restore_latest(manager, other)
  assert sorted(manager.all_steps()) == [1, 2] and not (tmp_path / "checkpoints_unreadable").exists()
  manager.close()


def test_checkpoint_of_another_shape_is_explained(tmp_path):
  config = ml_collections.ConfigDict({"task": "classifier"})
  manager = checkpoint.open_manager(tmp_path)
  checkpoint.save(manager, state_at(1), config, step=1)
  manager.wait_until_finished()
  other = {"step": jax.ShapeDtypeStruct((), jnp.int32), "v": jax.ShapeDtypeStruct((2,), jnp.float32)}
  with pytest.raises(CheckpointError, match="does not fit"):
    checkpoint.restore(manager, other)
  manager.close()


def test_empty_workdir_says_train_first(tmp_path):
  manager = checkpoint.open_manager(tmp_path)
  with pytest.raises(CheckpointError, match="Train first"):
    checkpoint.restore(manager, {})


def test_only_the_reports_of_abandoned_orbax_reads_are_dropped(monkeypatch):
  reported = []
  monkeypatch.setattr(sys, "unraisablehook", reported.append)
  checkpoint._hide_abandoned_read_reports()
  checkpoint._hide_abandoned_read_reports()  # Installed once, not stacked.
  assert sys.unraisablehook.drops_abandoned_orbax_reads

  def report(obj, error):
    sys.unraisablehook(types.SimpleNamespace(object=obj, exc_value=error, exc_traceback=error.__traceback__))

  # A read coroutine of Orbax's, closed unfinished: its error is caused by GeneratorExit.
  namespace = {}
  exec(compile("async def read_shard():\n  pass\n", "/site-packages/orbax/checkpoint/fake.py", "exec"), namespace)
  orbax_read, other_coroutine = namespace["read_shard"](), asyncio.sleep(0)
  closed_read = Exception("Encountered error while reading array index")
  closed_read.__cause__ = GeneratorExit()
  # A late TensorStore callback into a closed event loop.
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as e:
    late_callback = e
  report(orbax_read, closed_read)
  report(None, late_callback)
  assert reported == []
  # Anything else still reaches the previous hook.
  failed_read = Exception("a real failure")
  report(orbax_read, failed_read)
  report(other_coroutine, closed_read)
  unrelated = RuntimeError("Event loop is closed")  # The same words, but not raised inside asyncio.
  report(None, unrelated)
  assert [r.exc_value for r in reported] == [failed_read, closed_read, unrelated]
  orbax_read.close()
  other_coroutine.close()
