"""`gdjax export --format saved_model`: the exported functions as a TensorFlow SavedModel, for TF Serving.

The SavedModel wraps the very artifacts `gdjax export` wrote (through
`jax2tf.convert` of each `Exported.call`, natively serialized: the same
StableHLO runs inside TensorFlow's `XlaCallModule` op), with the weights as
TF variables. Its signatures take the contract's dtypes (uint8 images,
int64 seeds, ids and labels, a seed of shape [1]) and return them (int64
labels); out-of-range int64 inputs fail TF's assertions with a message, as
they get a 400 from `gdjax serve`. `serving_default` is the first function;
each function is also a signature of its own name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from jax.experimental import jax2tf

from gdjax.serving import artifact

DIRECTORY = "saved_model"
TF_DTYPES = {"UINT8": tf.uint8, "INT64": tf.int64, "FP32": tf.float32}


def write(directory: Path, metadata: dict) -> Path:
  """Writes `directory/saved_model` from the artifacts in `directory`; returns its path."""
  model = artifact.load(directory)
  module = tf.Module()
  module.weights = [tf.Variable(np.asarray(w), trainable=False) for w in model.weights]
  signatures = {}
  for name, function in model.functions.items():
    signatures[name] = _signature(module, function)
    setattr(module, name, signatures[name])
  signatures["serving_default"] = signatures[next(iter(model.functions))]
  path = Path(directory) / DIRECTORY
  tf.saved_model.save(
    module, str(path), signatures=signatures, options=tf.saved_model.SaveOptions(experimental_custom_gradients=False)
  )
  return path


def _signature(module: tf.Module, function: artifact.ExportedFunction):
  polymorphic = {name: _polymorphic_shape(name, info) for name, info in function.inputs.items()}
  converted = jax2tf.convert(
    function.exported.call,
    polymorphic_shapes=[None, polymorphic],
    native_serialization_platforms=tuple(p for p in function.exported.platforms if p in ("cpu", "cuda", "tpu")),
    with_gradient=False,
  )
  specs = [
    tf.TensorSpec([None if d == -1 else d for d in info.shape], TF_DTYPES[info.datatype], name=name)
    for name, info in function.inputs.items()
  ]
  names = list(function.inputs)
  batched = [name for name, info in function.inputs.items() if info.batched]

  @tf.function(input_signature=specs, autograph=False)
  def run(*tensors):
    given = dict(zip(names, tensors, strict=True))
    batch = tf.shape(given[batched[0]])[0]
    inputs = {}
    for name, info in function.inputs.items():
      value = given[name]
      if info.datatype == "INT64":
        low, high = info.range or artifact.INT32_RANGE
        checks = [
          tf.debugging.assert_greater_equal(value, tf.constant(low, tf.int64), message=f"{name} must be >= {low}"),
          tf.debugging.assert_less_equal(value, tf.constant(high, tf.int64), message=f"{name} must be <= {high}"),
        ]
        with tf.control_dependencies(checks):
          value = tf.cast(value, tf.int32)
      if info.per_row:
        value = tf.fill([batch], value[0])
      inputs[name] = value
    outputs = converted(module.weights, inputs)
    return {name: tf.cast(outputs[name], TF_DTYPES[info.datatype]) for name, info in function.outputs.items()}

  return run


def _polymorphic_shape(name: str, info: artifact.TensorInfo) -> str:
  """jax2tf's shape string of an artifact input: "(b, 28, 28, 1)", "(b,)" for a per-row scalar, and a symbol
  of its own for any other free dimension ("(b, noise_1, 32)")."""
  if info.per_row:
    return "(b,)"
  dims = ["b", *(f"{name}_{axis}" if size == -1 else str(size) for axis, size in enumerate(info.shape) if axis)]
  return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
