"""`gdjax export`: a trained workdir's inference functions as `jax.export` artifacts, weights and a contract.

Every function the task offers (`predict` as `classify`, `sample`, and any
later ones such as a VAE's `encode`/`decode`) is lowered once with a
symbolic batch dimension, so one artifact serves any batch size, for CPU,
CUDA and, where jax can lower for it, TPU. The weights are the artifacts'
first argument and sit beside them in `weights.npz`; `gdjax_export.json`
records the task, the config, the tensor contract (the Open Inference
Protocol's names, shapes and datatypes, which `gdjax serve` reports), the
class names, the feature network's hash, and the versions of jax, jaxlib
and the serialization format. `gdjax/serving/artifact.py` is copied beside
them as `load_model.py`: the directory then runs with jax and numpy alone.

A task's scalar inputs (a generator's seed) become per-row inputs of the
artifact, by `jax.vmap` over rows: the served model can then merge requests
with different seeds into one batch. Row i of a vmapped function is row i of
the task's own function (its noise comes from `fold_in(key(seed), id)` either
way), so a served sample is the image `gdjax sample` draws.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gdjax import data, run_state
from gdjax.errors import ConfigError
from gdjax.evaluators import feature_network
from gdjax.serving import artifact
from gdjax.tasks.base import InferenceFunction, TensorSpec

# The task's function name -> the exported (served) name.
CONTRACT_NAMES = {"predict": "classify"}
PLATFORMS = ("cpu", "cuda", "tpu")
REQUIRED_PLATFORMS = ("cpu", "cuda")
# INT64 contract inputs whose valid values are narrower than int32's.
SAMPLE_ID_RANGE = (0, 2**31 - 1)
CONTRACT_DATATYPES = {"uint8": "UINT8", "int32": "INT64", "float32": "FP32"}


def export_workdir(
  workdir: str | Path,
  out: str | Path,
  *,
  which: str = "latest",
  formats: tuple[str, ...] = ("jax",),
  platforms: tuple[str, ...] = PLATFORMS,
) -> dict:
  """Writes the workdir's inference functions to `out`; returns the metadata written there.

  `formats` may add "saved_model" (a TensorFlow SavedModel for TF Serving,
  through jax2tf). `out` must be empty, missing, or an earlier export, which
  is replaced whole only once the new one is complete.
  """
  unknown = sorted(set(formats) - {"jax", "saved_model"})
  if unknown:
    raise ConfigError(f"Unknown export format(s) {unknown}; use --format jax or --format saved_model.")
  out = Path(out)
  _check_destination(out)
  config, run = run_state.restore_workdir(workdir, which=which)
  params = jax.device_get(run.task.inference_params(run.state, use_ema=True))
  named_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  weight_names = [".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path) for path, _ in named_leaves]
  weights = [np.asarray(leaf) for _, leaf in named_leaves]
  class_names = _class_names(config)

  staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
  staging.chmod(0o755)  # mkdtemp makes it private; an export is meant to be read by a server or a container.
  try:
    buffer = io.BytesIO()
    np.savez(buffer, **dict(zip(weight_names, weights, strict=True)))
    (staging / artifact.WEIGHTS_FILE).write_bytes(buffer.getvalue())
    functions, lowered_for = {}, {}
    for task_name, function in run.task.inference_functions.items():
      name = CONTRACT_NAMES.get(task_name, task_name)
      exported, lowered_for[name] = lower(function, treedef, weights, platforms)
      raw = exported.serialize()
      (staging / f"{name}{artifact.ARTIFACT_SUFFIX}").write_bytes(raw)
      functions[name] = {
        "task_function": task_name,
        "artifact": f"{name}{artifact.ARTIFACT_SUFFIX}",
        "artifact_sha256": hashlib.sha256(raw).hexdigest(),
        "platforms": list(exported.platforms),
        "inputs": [contract(n, s, class_names, input=True) for n, s in function.inputs.items()],
        "outputs": [contract(n, s, class_names, input=False) for n, s in function.outputs.items()],
      }
      calling_convention = exported.calling_convention_version
    metadata = {
      "format": artifact.FORMAT,
      "format_version": artifact.FORMAT_VERSION,
      "task": config.task,
      "workdir": str(Path(workdir).resolve()),
      "checkpoint": which,
      "step": run.step,
      "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
      "config": json.loads(config.to_json_best_effort()),
      "class_names": class_names,
      "feature_network": _feature_network(config),
      "jax_version": jax.__version__,
      "jaxlib_version": _jaxlib_version(),
      "serialization_version": artifact.serialization_version(),
      "calling_convention_version": calling_convention,
      "platforms_not_lowered": {name: skipped for name, skipped in lowered_for.items() if skipped},
      "weights": {
        "file": artifact.WEIGHTS_FILE,
        "sha256": hashlib.sha256((staging / artifact.WEIGHTS_FILE).read_bytes()).hexdigest(),
        "names": weight_names,
      },
      "int64_note": (
        "jax runs without 64-bit types: INT64 tensors are int32 inside the artifacts. Values are range-checked "
        "at the boundary (each input's 'range', else int32's); outputs are widened to INT64."
      ),
      "per_row_note": (
        "Inputs marked per_row are scalars of the task's function (one per request, shape [1] in the contract); "
        "the artifact takes them per row, shape [batch]."
      ),
      "functions": functions,
    }
    (staging / artifact.METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    shutil.copyfile(Path(artifact.__file__), staging / "load_model.py")
    if "saved_model" in formats:
      from gdjax.serving import saved_model  # TensorFlow, only when asked for.

      saved_model.write(staging, metadata)
    if out.exists():
      shutil.rmtree(out)
    staging.rename(out)
  finally:
    if staging.exists():
      shutil.rmtree(staging)
  return metadata


def artifact_function(function: InferenceFunction, treedef):
  """`(weights list, per-row inputs) -> outputs`: the task's function with its scalar inputs made per row."""
  scalars = [name for name, spec in function.inputs.items() if not spec.shape]

  def run(weights, inputs):
    params = jax.tree.unflatten(treedef, weights)
    if not scalars:
      return function.fn(params, inputs)

    def one_row(row):
      rows = {name: (value if name in scalars else value[None]) for name, value in row.items()}
      return {name: value[0] for name, value in function.fn(params, rows).items()}

    return jax.vmap(one_row)(inputs)

  return run


def lower(function: InferenceFunction, treedef, weights, platforms) -> tuple[jax.export.Exported, dict]:
  """The exported artifact for `platforms`, dropping those jax cannot lower for (but never CPU or CUDA)."""
  input_specs = {
    name: jax.ShapeDtypeStruct(shape, jnp.dtype(function.inputs[name].dtype))
    for name, shape in symbolic_shapes(function).items()
  }
  weight_specs = [jax.ShapeDtypeStruct(w.shape, w.dtype) for w in weights]
  fn = jax.jit(artifact_function(function, treedef))
  skipped = {}
  platforms = tuple(platforms)
  while True:
    try:
      return jax.export.export(fn, platforms=platforms)(weight_specs, input_specs), skipped
    except Exception as e:  # jax raises various errors for a platform it cannot lower for.
      optional = [p for p in platforms if p not in REQUIRED_PLATFORMS]
      if not optional:
        raise
      skipped[optional[-1]] = f"{type(e).__name__}: {str(e)[:300]}"
      platforms = tuple(p for p in platforms if p != optional[-1])


def symbolic_shapes(function: InferenceFunction) -> dict[str, tuple]:
  """Each input's shape for lowering, every -1 symbolic: the batch ("batch") and any other free dimension
  ("<input>_<axis>", such as the number of noise draws per image); a scalar input becomes one value per row."""
  scope = jax.export.SymbolicScope()
  (batch,) = jax.export.symbolic_shape("batch", scope=scope)
  shapes = {}
  for name, spec in function.inputs.items():
    if not spec.shape:
      shapes[name] = (batch,)
      continue
    free = [f"{name}_{axis}" for axis, size in enumerate(spec.shape) if axis and size == -1]
    symbols = iter(jax.export.symbolic_shape(", ".join(free), scope=scope) if free else ())
    shapes[name] = (batch, *(next(symbols) if size == -1 else size for size in spec.shape[1:]))
  return shapes


def contract(name: str, spec: TensorSpec, class_names: list[str], *, input: bool) -> dict:
  """One tensor of the served contract: V2 datatype and shape, plus how the artifact holds it."""
  if spec.dtype not in CONTRACT_DATATYPES:
    raise ConfigError(f"Tensor {name!r} has dtype {spec.dtype}, which gdjax export cannot serve yet.")
  entry = {
    "name": name,
    "datatype": CONTRACT_DATATYPES[spec.dtype],
    "shape": list(spec.shape) if spec.shape else [1],
    "artifact_dtype": spec.dtype,
    "description": spec.description,
  }
  if input and not spec.shape:
    entry["per_row"] = True
  if input and spec.dtype == "int32":
    if name == "labels":
      entry["range"] = [0, len(class_names) - 1]
    elif name == "sample_ids":
      entry["range"] = list(SAMPLE_ID_RANGE)
    else:
      entry["range"] = list(artifact.INT32_RANGE)
  return entry


def _class_names(config) -> list[str]:
  try:
    return list(data.get_builder(config.dataset).info.features["label"].names)
  except Exception:  # The dataset is not on this machine: number the classes.
    return [str(i) for i in range(int(config.get("num_classes", 10)))]


def _feature_network(config) -> dict | None:
  evaluation = config.get("evaluation")
  if not evaluation or not evaluation.get("feature_network"):
    return None
  name = evaluation.feature_network
  path = Path(evaluation.get("feature_network_dir") or feature_network.ASSETS) / f"{name}.msgpack"
  if not path.is_file():
    return {"name": name, "sha256": None}
  return {"name": name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _jaxlib_version() -> str:
  import jaxlib

  return jaxlib.__version__


def _check_destination(out: Path) -> None:
  if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / artifact.METADATA_FILE).is_file())):
    raise ConfigError(
      f"{out} exists and is not an earlier gdjax export; give --out an empty or new directory "
      "(an earlier export there is replaced)."
    )
  out.parent.mkdir(parents=True, exist_ok=True)
