"""The dynamic batcher of gdjax serve, on a NumPy stand-in for a model: merging, splitting, the bounded queue, timeouts.

No jax and no HTTP: each test drives `batching.Batcher` from asyncio and
checks what the stand-in model saw against what each request got back.
"""

import asyncio
import threading

import numpy as np
import pytest

from gdjax.serving import batching


class Model:
  """y = 2x + row offset; records each batch's size, and can be held until released."""

  def __init__(self, fail_on=None):
    self.batches = []
    self.release = threading.Event()
    self.release.set()
    self.fail_on = fail_on

  def __call__(self, batch):
    self.release.wait(10)
    self.batches.append(len(batch["x"]))
    if self.fail_on is not None and self.fail_on in batch["x"]:
      raise RuntimeError("model failure")
    return {"y": 2 * batch["x"]}


def run(coroutine):
  return asyncio.run(coroutine)


def rows(start, n):
  return {"x": np.arange(start, start + n, dtype=np.int64)}


def test_bucket_sizes_are_powers_of_two_with_halfway_steps_from_8_then_the_largest_batch():
  assert batching.bucket_sizes(64) == (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
  assert batching.bucket_sizes(48) == (1, 2, 4, 8, 12, 16, 24, 32, 48)
  assert batching.bucket_sizes(40) == (1, 2, 4, 8, 12, 16, 24, 32, 40)
  assert batching.bucket_sizes(4) == (1, 2, 4)
  assert batching.bucket_sizes(1) == (1,)


def test_concurrent_requests_are_merged_padded_and_split_back():
  model = Model()
  seen = []

  async def main():
    batcher = batching.Batcher(model, max_batch_size=16, window_s=0.05, on_batch=lambda r, b: seen.append((r, b)))
    batcher.start()
    sizes = [1, 3, 2, 5]
    results = await asyncio.gather(*(batcher.submit(rows(100 * i, n), timeout_s=5) for i, n in enumerate(sizes)))
    await batcher.stop()
    return sizes, results

  sizes, results = run(main())
  for i, (n, result) in enumerate(zip(sizes, results)):
    np.testing.assert_array_equal(result["y"], 2 * np.arange(100 * i, 100 * i + n))
  assert seen == [(11, 12)] and model.batches == [12]  # One batch of 11 rows, padded to the bucket of 12.


def test_a_request_larger_than_a_batch_is_split_and_reassembled_in_order():
  model = Model()

  async def main():
    batcher = batching.Batcher(model, max_batch_size=4, window_s=0.0)
    batcher.start()
    result = await batcher.submit(rows(0, 10), timeout_s=5)
    await batcher.stop()
    return result

  np.testing.assert_array_equal(run(main())["y"], 2 * np.arange(10))
  assert model.batches == [4, 4, 2]


def test_without_merging_each_request_is_its_own_batch():
  model = Model()

  async def main():
    batcher = batching.Batcher(model, max_batch_size=16, window_s=0.05, merge=False)
    batcher.start()
    await asyncio.gather(*(batcher.submit(rows(i, 1), timeout_s=5) for i in range(5)))
    await batcher.stop()

  run(main())
  assert model.batches == [1] * 5


def test_a_full_queue_refuses_at_once_and_recovers():
  model = Model()
  model.release.clear()  # The model is busy: nothing leaves the queue.

  async def main():
    batcher = batching.Batcher(model, max_batch_size=4, window_s=0.0, max_queue_rows=8)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(rows(0, 4), timeout_s=5))  # Taken by the worker, which blocks.
    await asyncio.sleep(0.05)
    queued = [asyncio.ensure_future(batcher.submit(rows(10 * i, 4), timeout_s=5)) for i in (1, 2)]  # 8 rows wait.
    await asyncio.sleep(0.05)
    with pytest.raises(batching.QueueFull, match="exceed its bound of 8"):
      await batcher.submit(rows(99, 1), timeout_s=5)
    model.release.set()
    done = await asyncio.gather(first, *queued)
    after = await batcher.submit(rows(50, 1), timeout_s=5)  # Room again.
    await batcher.stop()
    return done, after

  done, after = run(main())
  np.testing.assert_array_equal(done[2]["y"], 2 * np.arange(20, 24))
  np.testing.assert_array_equal(after["y"], [100])


def test_a_request_that_times_out_in_the_queue_is_never_computed():
  model = Model()
  model.release.clear()

  async def main():
    batcher = batching.Batcher(model, max_batch_size=4, window_s=0.0)
    batcher.start()
    busy = asyncio.ensure_future(batcher.submit(rows(0, 4), timeout_s=5))
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
      await batcher.submit(rows(1000, 2), timeout_s=0.05)
    assert batcher.queued_rows == 2  # Still queued, but cancelled: the worker drops it.
    model.release.set()
    await busy
    later = await batcher.submit(rows(7, 1), timeout_s=5)
    await batcher.stop()
    return later

  np.testing.assert_array_equal(run(main())["y"], [14])
  assert model.batches == [4, 1]  # The timed-out rows never reached the model.


def test_a_failing_batch_fails_only_its_own_requests():
  model = Model(fail_on=13)

  async def main():
    batcher = batching.Batcher(model, max_batch_size=4, window_s=0.0, merge=False)
    batcher.start()
    results = await asyncio.gather(
      batcher.submit(rows(13, 1), timeout_s=5), batcher.submit(rows(3, 1), timeout_s=5), return_exceptions=True
    )
    await batcher.stop()
    return results

  failed, fine = run(main())
  assert isinstance(failed, RuntimeError)
  np.testing.assert_array_equal(fine["y"], [6])


def test_stop_refuses_new_requests():
  async def main():
    batcher = batching.Batcher(Model(), max_batch_size=2)
    batcher.start()
    await batcher.stop()
    with pytest.raises(batching.ShuttingDown):
      await batcher.submit(rows(0, 1), timeout_s=1)

  run(main())


def test_only_requests_of_one_shape_share_a_batch():
  """A free dimension past the batch axis (a VAE's draws per image) keeps requests of different sizes apart."""
  seen = []

  def model(batch):
    seen.append(batch["x"].shape)
    return {"y": batch["x"].sum(axis=1)}

  async def main():
    batcher = batching.Batcher(model, max_batch_size=8, window_s=0.05)
    batcher.start()
    shapes = [(1, 3), (2, 5), (1, 3), (1, 5)]
    requests = [np.full(shape, i, np.int64) for i, shape in enumerate(shapes)]
    results = await asyncio.gather(*(batcher.submit({"x": x}, timeout_s=5) for x in requests))
    await batcher.stop()
    return requests, results

  requests, results = run(main())
  for x, result in zip(requests, results):
    np.testing.assert_array_equal(result["y"], x.sum(axis=1))
  # Requests are taken in order of arrival, and a batch ends at the first one of another width.
  assert [shape[1] for shape in seen] == [3, 5, 3, 5]


def test_the_window_is_waited_out_only_while_an_announced_request_is_on_its_way():
  model = Model()

  async def main():
    batcher = batching.Batcher(model, max_batch_size=8, window_s=0.5, announced=True)
    batcher.start()
    start = asyncio.get_running_loop().time()
    await batcher.submit(rows(0, 1), timeout_s=5)  # Alone: runs at once.
    alone = asyncio.get_running_loop().time() - start

    withdraw = batcher.announce()  # A second request is being read...
    first = asyncio.ensure_future(batcher.submit(rows(10, 1), timeout_s=5))
    await asyncio.sleep(0.1)
    withdraw()
    second = await batcher.submit(rows(20, 1), timeout_s=5)  # ...and joins the first one's batch.
    await first
    await batcher.stop()
    return alone, second

  alone, second = run(main())
  assert alone < 0.25 and model.batches == [1, 2]
  np.testing.assert_array_equal(second["y"], [40])
