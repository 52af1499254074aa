"""Peak bytes of live PyTorch tensors during a call, on any device.

CUDA keeps allocator statistics (`torch.cuda.max_memory_allocated`); the CPU
allocator keeps none. So this counts tensor storages instead: every storage
alive when counting starts (parameters, gradients, optimizer state, EMA copy,
batch: the `resident` tensors) plus every storage an operator returns while
counting, minus each one when it is freed. Its high-water mark is the
counterpart of what the suite reports for gdjax, XLA's buffer assignment for
the compiled step (arguments + outputs + temporaries). Neither side counts the
framework's own code, caches or allocator slack; PyTorch's kernel scratch
space that never surfaces as a tensor is not counted either.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary


class LiveTensorBytes(TorchDispatchMode):
  """Inside `with`, tracks the bytes of live tensor storages; `peak` is the high-water mark."""

  def __init__(self, resident: Iterable[torch.Tensor] = ()):
    super().__init__()
    self._sizes = WeakIdKeyDictionary()
    self.current = 0
    self.peak = 0
    for tensor in resident:
      self._track(tensor)

  def _track(self, tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
      return
    storage = tensor.untyped_storage()
    if storage in self._sizes:  # A view, or a tensor already counted.
      return
    nbytes = storage.nbytes()
    self._sizes[storage] = nbytes
    self.current += nbytes
    self.peak = max(self.peak, self.current)
    weakref.finalize(storage, self._release, nbytes)

  def _release(self, nbytes: int) -> None:
    self.current -= nbytes

  def __torch_dispatch__(self, func, types, args=(), kwargs=None):
    outputs = func(*args, **(kwargs or {}))
    for tensor in tree_flatten(outputs)[0]:
      self._track(tensor)
    return outputs


def resident_tensors(*objects) -> list[torch.Tensor]:
  """Tensors held by modules (parameters, gradients, buffers), optimizers (state) and plain tensors."""
  found = []
  for obj in objects:
    if isinstance(obj, torch.nn.Module):
      found += [p for p in obj.parameters()] + [p.grad for p in obj.parameters() if p.grad is not None]
      found += list(obj.buffers())
    elif isinstance(obj, torch.optim.Optimizer):
      found += [v for state in obj.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    elif isinstance(obj, torch.Tensor):
      found.append(obj)
    elif isinstance(obj, dict):
      found += resident_tensors(*obj.values())
  return found


def peak_bytes_of_call(fn: Callable[[], object], resident: Iterable[torch.Tensor]) -> int:
  """Peak live tensor bytes while `fn()` runs, counting `resident` as live from the start."""
  counter = LiveTensorBytes(resident)
  with counter:
    fn()
  return counter.peak
