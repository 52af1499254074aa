"""Loads and runs a model that `gdjax export` wrote, with `jax` and `numpy` alone.

This module imports nothing of gdjax, Flax or TensorFlow, so that an export
directory is self-contained: `gdjax export` copies this file into it as
`load_model.py`, and anyone with jax can run the model::

    import load_model
    model = load_model.load("exported/cnn")
    model.functions["classify"](images=uint8_images)     # {"probabilities": ..., "labels": ...}
    model.functions["sample"](seed=[0], sample_ids=np.arange(16))

An export directory holds `gdjax_export.json` (the metadata: task, config,
tensor contract, versions), one serialized `jax.export` artifact per
inference function (`<function>.jax_exported`, StableHLO with a symbolic
batch dimension) and `weights.npz`, the arguments the artifacts take. The
weights stay outside the artifacts so they can be inspected, swapped or
quantised without re-lowering.

The tensor contract is the Open Inference Protocol's (INT64, FP32, UINT8).
jax runs without 64-bit types, so INT64 tensors are int32 inside the
artifacts: `to_artifact` range-checks them at the boundary and refuses what
int32 (or the input's own range, such as a label's class count) cannot hold.
A scalar input of a task's function (a generator's seed) is per row in the
artifact, so one batch can hold rows of several requests with different
seeds; the contract still takes it as a tensor of shape [1].

StableHLO artifacts load only within jax's compatibility window (about 6
months backwards). An artifact made by a jax outside it is refused with
`ArtifactVersionError`, whose message names the versions that made it and
says how to re-export, before any bytes are deserialized.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import jax
import numpy as np

FORMAT = "gdjax-export"
FORMAT_VERSION = 1
METADATA_FILE = "gdjax_export.json"
WEIGHTS_FILE = "weights.npz"
ARTIFACT_SUFFIX = ".jax_exported"

# Open Inference Protocol datatypes of the contract, and the NumPy dtype a request's values take.
CONTRACT_DTYPES = {"UINT8": np.uint8, "INT64": np.int64, "FP32": np.float32}
INT32_RANGE = (-(2**31), 2**31 - 1)


class ArtifactError(Exception):
  """An export directory that cannot be loaded: missing files, wrong format, a corrupt file."""


class ArtifactVersionError(ArtifactError):
  """An artifact made by a jax whose StableHLO this jax cannot load."""


class ContractError(ValueError):
  """Inputs that do not fit a function's tensor contract (shape, dtype, range), with what to send instead."""


def serialization_version() -> int | None:
  """The newest `jax.export` serialization version this jax writes and reads (None if jax no longer says)."""
  try:
    from jax._src.export import serialization  # The version has no public name.

    return int(serialization._SERIALIZATION_VERSION)
  except (ImportError, AttributeError):
    return None


def supported_calling_conventions() -> tuple[int, int]:
  return (
    jax.export.minimum_supported_calling_convention_version,
    jax.export.maximum_supported_calling_convention_version,
  )


def version_problem(metadata: dict) -> str | None:
  """Why this jax cannot load artifacts with this metadata, or None if it can."""
  low, high = supported_calling_conventions()
  convention = metadata.get("calling_convention_version")
  serialization = metadata.get("serialization_version")
  reasons = []
  if not isinstance(convention, int) or not low <= convention <= high:
    reasons.append(f"calling convention {convention} is outside this jax's supported {low}..{high}")
  newest = serialization_version()
  if newest is not None and (not isinstance(serialization, int) or serialization > newest):
    reasons.append(f"serialization version {serialization} is newer than this jax's {newest}")
  if not reasons:
    return None
  made_by = f"jax {metadata.get('jax_version', '?')} (jaxlib {metadata.get('jaxlib_version', '?')})"
  return (
    f"it was exported by {made_by} on {metadata.get('created', 'an unknown date')}, and its "
    + " and its ".join(reasons)
    + f"; this is jax {jax.__version__}. StableHLO artifacts load only within jax's compatibility window "
    f"(about 6 months backwards). Re-export it with this jax: `gdjax export --workdir "
    f"{metadata.get('workdir', '<the training workdir>')} --out <directory>`, or load it with "
    f"jax=={metadata.get('jax_version', '<the version that made it>')}."
  )


class TensorInfo:
  """One tensor of the contract: V2 name, datatype and shape (-1 for the batch), and how the artifact holds it."""

  def __init__(self, spec: dict):
    self.name = spec["name"]
    self.datatype = spec["datatype"]
    self.shape = tuple(spec["shape"])
    self.artifact_dtype = np.dtype(spec["artifact_dtype"])
    self.per_row = bool(spec.get("per_row", False))  # A scalar of the task's function, repeated per row.
    self.range = tuple(spec["range"]) if spec.get("range") else None
    self.description = spec.get("description", "")

  @property
  def batched(self) -> bool:
    return self.shape[:1] == (-1,)

  def describe(self) -> str:
    shape = ", ".join(str(d) for d in self.shape)
    return f"{self.name!r} {self.datatype} [{shape}]"


class ExportedFunction:
  """One exported inference function: the contract, a check of inputs against it, and the compiled artifact."""

  def __init__(self, name: str, spec: dict, exported, weights: list):
    self.name = name
    self.inputs = {t["name"]: TensorInfo(t) for t in spec["inputs"]}
    self.outputs = {t["name"]: TensorInfo(t) for t in spec["outputs"]}
    self.exported = exported
    self.weights = weights
    self._call = jax.jit(exported.call)

  def to_artifact(self, inputs: dict) -> dict[str, np.ndarray]:
    """Contract inputs (arrays or nested lists) -> the artifact's per-row arrays; raises `ContractError`."""
    unknown = sorted(set(inputs) - set(self.inputs))
    missing = [name for name in self.inputs if name not in inputs]
    if unknown or missing:
      expected = ", ".join(t.describe() for t in self.inputs.values())
      raise ContractError(
        f"{self.name} takes the inputs {expected}; "
        + (f"got unknown {unknown}" if unknown else "")
        + ("; " if unknown and missing else "")
        + (f"missing {missing}" if missing else "")
        + "."
      )
    arrays = {name: self._check(self.inputs[name], value) for name, value in inputs.items()}
    rows = {len(arrays[name]) for name, info in self.inputs.items() if info.batched}
    if len(rows) > 1:
      sizes = {name: len(arrays[name]) for name, info in self.inputs.items() if info.batched}
      raise ContractError(f"The batched inputs of {self.name} must have one length; got {sizes}.")
    (batch,) = rows or {1}
    if batch == 0:
      raise ContractError(f"{self.name} got an empty batch; send at least one row.")
    for name, info in self.inputs.items():
      if info.per_row:
        arrays[name] = np.broadcast_to(arrays[name], (batch,))
      arrays[name] = np.ascontiguousarray(arrays[name], dtype=info.artifact_dtype)
    return arrays

  def _check(self, info: TensorInfo, value) -> np.ndarray:
    try:
      array = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:
      raise ContractError(f"{info.describe()} is not a numeric array: {e}.") from e
    expected = CONTRACT_DTYPES[info.datatype]
    accepted = "iu" if np.issubdtype(expected, np.integer) else "iuf"  # No bools, strings or objects.
    if array.dtype.kind not in accepted:
      raise ContractError(f"{info.describe()} must hold {info.datatype} values; got {array.dtype}.")
    if array.ndim != len(info.shape) or any(e != -1 and e != a for e, a in zip(info.shape, array.shape)):
      raise ContractError(f"{info.describe()} has the wrong shape {list(array.shape)}.")
    if array.dtype.kind == "f" and array.size and not np.all(np.isfinite(array.astype(info.artifact_dtype))):
      raise ContractError(f"{info.describe()} holds NaN, infinite values or values beyond float32's range.")
    low, high = info.range or _dtype_range(expected)
    if array.dtype.kind in "iu" and array.size and not _holds_only(array.dtype, low, high):
      if array.min() < low or array.max() > high:
        raise ContractError(
          f"{info.describe()} must lie in [{low}, {high}]; got values in [{array.min()}, {array.max()}]."
        )
    return array

  def from_artifact(self, outputs: dict) -> dict[str, np.ndarray]:
    """The artifact's outputs as contract dtypes (int32 labels -> INT64)."""
    return {
      name: np.asarray(outputs[name]).astype(CONTRACT_DTYPES[info.datatype]) for name, info in self.outputs.items()
    }

  def call_artifact(self, arrays: dict[str, np.ndarray]) -> dict:
    """Runs the artifact on arrays already in its dtypes (`to_artifact`); returns device arrays."""
    return self._call(self.weights, arrays)

  def __call__(self, **inputs) -> dict[str, np.ndarray]:
    """Contract inputs in, contract outputs out, as NumPy."""
    return self.from_artifact(jax.device_get(self.call_artifact(self.to_artifact(inputs))))


@functools.lru_cache
def _holds_only(dtype: np.dtype, low, high) -> bool:
  """Whether every value of the integer `dtype` lies in [low, high], so that no value needs checking."""
  info = np.iinfo(dtype)
  return low <= info.min and info.max <= high


@functools.lru_cache
def _dtype_range(dtype) -> tuple[int, int]:
  if dtype == np.int64:
    return INT32_RANGE  # INT64 is int32 inside the artifact.
  info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
  return (int(info.min), int(info.max)) if info else (-np.inf, np.inf)


class ExportedModel:
  """An export directory: its metadata, weights and functions (`functions[name](**inputs)`)."""

  def __init__(self, directory: str | Path):
    self.directory = Path(directory)
    self.metadata = read_metadata(self.directory)
    problem = version_problem(self.metadata)
    if problem:
      raise ArtifactVersionError(f"Cannot load the model in {self.directory}: {problem}")
    self.weights = load_weights(self.directory, self.metadata)
    self.functions = {
      name: ExportedFunction(name, spec, _deserialize(self.directory, spec, self.metadata), self.weights)
      for name, spec in self.metadata["functions"].items()
    }

  @property
  def class_names(self) -> list[str]:
    return list(self.metadata.get("class_names") or [])


def read_metadata(directory: Path) -> dict:
  path = directory / METADATA_FILE
  if not path.is_file():
    raise ArtifactError(f"{directory} holds no {METADATA_FILE}; write one with `gdjax export --workdir W --out DIR`.")
  try:
    metadata = json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise ArtifactError(f"{path} is not valid JSON ({e}); re-export the model with `gdjax export`.") from e
  if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
    raise ArtifactError(f'{path} is not a gdjax export (no "format": "{FORMAT}"); re-export with `gdjax export`.')
  if metadata.get("format_version") != FORMAT_VERSION:
    raise ArtifactVersionError(
      f"{path} has export format {metadata.get('format_version')}, this loader reads format {FORMAT_VERSION}; "
      "re-export it with this gdjax (`gdjax export --workdir W --out DIR`)."
    )
  return metadata


def load_weights(directory: Path, metadata: dict) -> list:
  """The artifacts' first argument: the weights, in the order the metadata lists them, on the default device."""
  path = directory / metadata["weights"]["file"]
  if not path.is_file():
    raise ArtifactError(f"{path} is missing; the weights sit beside the artifacts. Re-export with `gdjax export`.")
  raw = path.read_bytes()
  if hashlib.sha256(raw).hexdigest() != metadata["weights"]["sha256"]:
    raise ArtifactError(f"{path} does not match the SHA-256 in {METADATA_FILE}: it is corrupt or from another export.")
  with np.load(path, allow_pickle=False) as archive:
    return [jax.device_put(archive[name]) for name in metadata["weights"]["names"]]


def _deserialize(directory: Path, spec: dict, metadata: dict):
  path = directory / spec["artifact"]
  if not path.is_file():
    raise ArtifactError(f"{path} is missing; re-export with `gdjax export`.")
  raw = path.read_bytes()
  if hashlib.sha256(raw).hexdigest() != spec["artifact_sha256"]:
    raise ArtifactError(f"{path} does not match the SHA-256 in {METADATA_FILE}: it is corrupt or from another export.")
  try:
    return jax.export.deserialize(bytearray(raw))
  except Exception as e:  # Whatever a too-old or too-new flatbuffer makes jax raise.
    raise ArtifactVersionError(
      f"Cannot deserialize {path} ({type(e).__name__}: {e}). It was exported by jax "
      f"{metadata.get('jax_version', '?')} with serialization version {metadata.get('serialization_version')}; "
      f"this is jax {jax.__version__} (serialization version {serialization_version()}). Re-export it with this jax: "
      f"`gdjax export --workdir {metadata.get('workdir', '<the training workdir>')} --out <directory>`."
    ) from e


def load(directory: str | Path) -> ExportedModel:
  """The exported model in `directory`; raises `ArtifactError` (or `ArtifactVersionError`) with what to do."""
  return ExportedModel(directory)
