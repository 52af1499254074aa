"""Dynamic batching with a bounded queue: many small requests become one padded batch, or a 429.

As MLServer's adaptive batching (`max_batch_size`, `max_batch_time`) and
Ray Serve's `@serve.batch` do it: a worker takes the oldest waiting request,
then merges the requests that arrive within a short window (a few
milliseconds) until the batch is full (only requests whose inputs agree
past the batch axis share a batch), pads it to the next bucket size (1,
2, 4, 8, 12, 16, 24, ... up to the largest batch), runs it in one call and
hands each request its rows. Buckets keep the number of compiled shapes
small, and every bucket is compiled before the server reports ready.

The queue is bounded in rows, not requests: a request that would take it
over its bound is refused at once (`QueueFull`, answered 429 with
`Retry-After`), so overload costs clients a retry, not an unbounded backlog
whose latency grows without limit. A request that times out while it waits
is dropped from the queue and never computed. The model runs in one worker
thread per model, outside the event loop, which keeps parsing and answering
other requests meanwhile.

A server knows which requests are on their way: it announces each one
from its arrival until it is submitted (`announce`). With `announced=True`
the window is waited out only while some announced request has not yet
arrived in the queue, so a lone request (a client at concurrency 1) runs at
once instead of paying the window.

With merging off (`merge=False`), each request is its own batch: the
baseline the load test compares against.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
from collections.abc import Callable

import numpy as np


class QueueFull(Exception):
  """The queue holds too many rows to take this request now; retry after `retry_after_s`."""

  def __init__(self, message: str, retry_after_s: int = 1):
    super().__init__(message)
    self.retry_after_s = retry_after_s


class ShuttingDown(Exception):
  """The batcher is stopping and takes no new requests."""


def bucket_sizes(max_batch_size: int) -> tuple[int, ...]:
  """The padded batch shapes: 1, 2, 4, 8, then powers of two and the halfway steps between them (12, 16, 24,
  32, 48, ...) below `max_batch_size`, then `max_batch_size` itself. Past 8 rows, padding adds less than half
  a batch's rows, where powers of two alone add up to all of them: on a CPU the model's time grows with the
  padded rows, and a batch of 17 padded to 32 costs nearly what 32 rows do (it runs as 24 here)."""
  sizes, size = [], 1
  while size < max_batch_size:
    sizes.append(size)
    if size >= 8 and size * 3 // 2 < max_batch_size:
      sizes.append(size * 3 // 2)
    size *= 2
  return (*sizes, max_batch_size)


@dataclasses.dataclass
class _Pending:
  arrays: dict[str, np.ndarray]
  rows: int
  future: asyncio.Future
  signature: tuple = dataclasses.field(init=False)  # What must match for two requests to share a batch.

  def __post_init__(self):
    self.signature = tuple((name, array.shape[1:]) for name, array in self.arrays.items())  # Shapes past axis 0.


def _time_out(future: asyncio.Future) -> None:
  if not future.done():
    future.set_exception(TimeoutError())


class Batcher:
  """Merges concurrent requests for one function into padded batches; see the module docstring."""

  def __init__(
    self,
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    *,
    max_batch_size: int = 64,
    window_s: float = 0.002,
    max_queue_rows: int = 512,
    merge: bool = True,
    announced: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
  ):
    if max_batch_size < 1 or max_queue_rows < max_batch_size:
      raise ValueError(
        f"Need max_batch_size >= 1 and max_queue_rows >= max_batch_size; got {max_batch_size}, {max_queue_rows}."
      )
    self.run = run
    self.max_batch_size = max_batch_size
    self.buckets = bucket_sizes(max_batch_size)
    self.window_s = window_s
    self.max_queue_rows = max_queue_rows
    self.merge = merge
    self.on_batch = on_batch or (lambda rows, bucket: None)
    self.announced = announced
    self.arriving = 0  # Requests announced (being read and checked) but not yet submitted.
    self.queued_rows = 0
    self._queue: collections.deque[_Pending] = collections.deque()
    self._waiter: asyncio.Future | None = None  # What the worker awaits while it has nothing to do (`_sleep`).
    self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gdjax-batch")
    self._task: asyncio.Task | None = None
    self._closed = False

  def bucket(self, rows: int) -> int:
    return next(size for size in self.buckets if size >= rows)

  def start(self) -> None:
    self._task = asyncio.get_running_loop().create_task(self._loop())

  async def stop(self) -> None:
    """Takes no more requests, fails any still queued, and stops the worker."""
    self._closed = True
    while self._queue:
      item = self._queue.popleft()
      if not item.future.done():
        item.future.set_exception(ShuttingDown("the server is shutting down"))
    if self._task:
      self._task.cancel()
      await asyncio.gather(self._task, return_exceptions=True)
    self._executor.shutdown(wait=True)

  def announce(self) -> Callable[[], None]:
    """Counts a request on its way to `submit` (arrived, still being read and checked); returns the function
    that withdraws it, to call just before `submit` with no `await` between, or when the request fails.
    With `announced=True`, a batch waits out its window only while some request is on its way."""
    self.arriving += 1
    withdrawn = False

    def withdraw() -> None:
      nonlocal withdrawn
      if not withdrawn:
        withdrawn = True
        self.arriving -= 1
        self._wake()  # A window waiting for this request may end now.

    return withdraw

  def check_room(self, rows: int = 1) -> None:
    """Raises `QueueFull` (or `ShuttingDown`) unless `rows` more rows fit in the queue now."""
    if self._closed:
      raise ShuttingDown("the server is shutting down")
    if self.queued_rows + rows > self.max_queue_rows:
      raise QueueFull(
        f"The queue holds {self.queued_rows} rows, and {rows} more would exceed its bound of "
        f"{self.max_queue_rows}; retry later."
      )

  async def submit(self, arrays: dict[str, np.ndarray], *, timeout_s: float) -> dict[str, np.ndarray]:
    """The outputs for `arrays` (rows along axis 0), computed in some batch; raises `QueueFull` or `TimeoutError`."""
    rows = len(next(iter(arrays.values())))
    self.check_room(rows)
    loop = asyncio.get_running_loop()
    futures = []
    for start in range(0, rows, self.max_batch_size):
      chunk = {name: array[start : start + self.max_batch_size] for name, array in arrays.items()}
      item = _Pending(chunk, len(next(iter(chunk.values()))), loop.create_future())
      self._queue.append(item)
      self.queued_rows += item.rows
      futures.append(item.future)
    self._wake()
    if len(futures) == 1:  # As `asyncio.wait_for`, with one timer and no second future or task.
      timer = loop.call_later(timeout_s, _time_out, futures[0])
      try:
        return await futures[0]
      finally:
        timer.cancel()
    results = await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

  def _take(self) -> _Pending | None:
    item = self._queue.popleft()
    self.queued_rows -= item.rows
    return None if item.future.done() else item  # Timed out or cancelled while it waited.

  async def _loop(self) -> None:
    loop = asyncio.get_running_loop()
    while True:
      if not self._queue:
        await self._sleep(None)
        continue
      first = self._take()
      if first is None:
        continue
      items, rows = [first], first.rows
      deadline = loop.time() + self.window_s
      while self.merge and rows < self.max_batch_size:
        while (
          self._queue
          and rows + self._queue[0].rows <= self.max_batch_size
          and self._queue[0].signature == first.signature
        ):
          item = self._take()
          if item is not None:
            items.append(item)
            rows += item.rows
        remaining = deadline - loop.time()
        if rows >= self.max_batch_size or self._queue or remaining <= 0:
          break  # Full, or the next request does not fit (rows or shape), or the window is over.
        if self.announced and not self.arriving:
          break  # No request is on its way: waiting would only add latency.
        await self._sleep(remaining)
      await self._execute(items, rows)

  def _wake(self) -> None:
    if self._waiter is not None and not self._waiter.done():
      self._waiter.set_result(None)

  async def _sleep(self, timeout_s: float | None) -> None:
    """Until `_wake` (a request queued or withdrawn) or `timeout_s` later: one future and at most one timer,
    where `asyncio.wait_for` on an `asyncio.Event` makes a task per wake-up."""
    loop = asyncio.get_running_loop()
    self._waiter = loop.create_future()
    timer = None if timeout_s is None else loop.call_later(timeout_s, self._wake)
    try:
      await self._waiter
    finally:
      self._waiter = None
      if timer is not None:
        timer.cancel()

  async def _execute(self, items: list[_Pending], rows: int) -> None:
    bucket = self.bucket(rows)
    batch = {}
    for name in items[0].arrays:
      parts = [item.arrays[name] for item in items]
      if bucket > rows:  # Zeros are a valid row of every input (pixel 0, seed 0, id 0, label 0).
        parts.append(np.zeros((bucket - rows, *parts[0].shape[1:]), parts[0].dtype))
      batch[name] = np.concatenate(parts) if len(parts) > 1 else parts[0]
    try:
      outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self.run, batch)
    except Exception as e:  # A failure of the model itself: every request of this batch gets it.
      for item in items:
        if not item.future.done():
          item.future.set_exception(e)
      return
    self.on_batch(rows, bucket)
    offset = 0
    for item in items:
      if not item.future.done():
        item.future.set_result({name: value[offset : offset + item.rows] for name, value in outputs.items()})
      offset += item.rows
