"""Model FLOPs of a function, counted from its convolutions and matmuls: the numerator of the suite's MFU.

`matmul_and_conv_flops(fn, *args)` traces `fn` to a jaxpr and adds up
2 * multiply-adds of every `dot_general` and `conv_general_dilated` in it,
nested jaxprs (jit, grad, custom rules, control flow bodies) included. Traced
through `jax.grad` or a whole train step, this counts the forward and the
backward pass. Element-wise work (activations, batch norm, the optimizer) is
left out, as model-FLOPs-utilisation (MFU) figures usually do.

A convolution with input dilation (the input gradient of a strided
convolution, or XLA's form of a transposed one) multiplies mostly inserted
zeros; only the products with real inputs are counted, so a model's FLOPs do
not depend on which of those forms computes it.

Only JAX is imported here (no torch, no gdjax), so tests/test_flops.py can
import it on any machine.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.extend import core as jax_core


def matmul_and_conv_flops(fn, *args, **kwargs) -> float:
  """FLOPs of the `dot_general` and `conv_general_dilated` ops `fn(*args, **kwargs)` runs."""
  closed = jax.make_jaxpr(fn)(*args, **kwargs)
  return _jaxpr_flops(closed.jaxpr)


def _jaxpr_flops(jaxpr) -> float:
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "conv_general_dilated":
      total += _conv_flops(eqn)
    multiplier = eqn.params.get("length", 1) if name == "scan" else 1
    for sub in _sub_jaxprs(eqn.params):
      total += multiplier * _jaxpr_flops(sub)
  return total


def _sub_jaxprs(params: dict[str, Any]):
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jax_core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, jax_core.Jaxpr):
        yield item


def _dot_flops(eqn) -> float:
  lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
  (lhs_contract, _), (lhs_batch, _) = eqn.params["dimension_numbers"]
  out_size = math.prod(eqn.outvars[0].aval.shape)
  contracted = math.prod(lhs[d] for d in lhs_contract)
  del rhs, lhs_batch  # The output already spans the batch and free dimensions.
  return 2.0 * out_size * contracted


def _conv_flops(eqn) -> float:
  rhs_shape = eqn.invars[1].aval.shape
  out_size = math.prod(eqn.outvars[0].aval.shape)
  dimension_numbers = eqn.params["dimension_numbers"]
  rhs_spec = dimension_numbers.rhs_spec  # (out features, in features, *spatial)
  in_features = rhs_shape[rhs_spec[1]]
  window = math.prod(rhs_shape[d] for d in rhs_spec[2:])
  input_dilation = math.prod(eqn.params.get("lhs_dilation") or (1,))
  return 2.0 * out_size * in_features * window / input_dilation
