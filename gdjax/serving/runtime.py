"""The models a server holds: each export directory's functions, their batchers, warm-up and V2 metadata.

A served model is one exported function. Its V2 name is the export
directory's base name (or the NAME of `NAME=DIR`), or `<name>.<function>`
for a directory with several functions (a VAE's encode and decode). Loading reads the metadata,
refuses an artifact this jax cannot load (with the message of
`artifact.ArtifactVersionError`) and deserializes; warming up compiles every
batch bucket, after which the model reports ready.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import jax
import numpy as np

from gdjax.serving import artifact, batching
from gdjax.serving.metrics import ServeMetrics

TOKEN_ENV = "GDJAX_SERVE_TOKEN"


@dataclasses.dataclass(frozen=True)
class ServeOptions:
  """Every limit and knob of `gdjax serve`; the CLI flags have the same names."""

  max_batch_size: int = 64
  batch_window_ms: float = 2.0
  batching: bool = True
  max_queue_rows: int = 512
  max_images_per_request: int = 64
  max_samples_per_request: int = 256
  max_body_bytes: int = 4 * 2**20
  request_timeout_s: float = 30.0
  token: str | None = None

  def __post_init__(self):
    problems = []
    if self.max_batch_size < 1:
      problems.append("--max_batch_size must be at least 1")
    if self.max_queue_rows < self.max_batch_size:
      problems.append("--max_queue_rows must be at least --max_batch_size")
    if min(self.max_images_per_request, self.max_samples_per_request) < 1:
      problems.append("--max_images_per_request and --max_samples_per_request must be at least 1")
    if self.batch_window_ms < 0 or self.request_timeout_s <= 0 or self.max_body_bytes < 1024:
      problems.append("--batch_window_ms must be >= 0, --request_timeout_s > 0, --max_body_bytes >= 1024")
    if self.token is not None and len(self.token) < 16:
      problems.append(f"the bearer token (--token or ${TOKEN_ENV}) must have at least 16 characters")
    if problems:
      raise ValueError("; ".join(problems) + ".")

  @classmethod
  def with_token_from_env(cls, **options) -> ServeOptions:
    token = options.pop("token", None) or os.environ.get(TOKEN_ENV) or None
    return cls(token=token, **options)


class ServedModel:
  """One exported function behind a batcher."""

  def __init__(
    self, name: str, directory: Path, model: artifact.ExportedModel, function_name: str, options: ServeOptions
  ):
    self.name = name
    self.directory = directory
    self.model = model
    self.function = model.functions[function_name]
    self.takes_images = "images" in self.function.inputs
    # The PNG upload answers with a label and probabilities: it needs a classifier's outputs.
    self.classifies = self.takes_images and {"labels", "probabilities"} <= set(self.function.outputs)
    limit = options.max_images_per_request if self.takes_images else options.max_samples_per_request
    self.max_rows = min(limit, options.max_queue_rows)  # A larger request could never enter the queue.
    self.options = options
    self.batcher: batching.Batcher | None = None
    self.in_flight = 0  # Requests admitted and not yet answered (counted by the server's admission).
    self.ready = False

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.function.inputs["images"].shape[1:])

  def run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One padded batch in the artifact's dtypes -> contract outputs as NumPy (in the batcher's worker thread)."""
    return self.function.from_artifact(jax.device_get(self.function.call_artifact(batch)))

  def start(self, metrics: ServeMetrics) -> None:
    """Creates and starts the batcher (in the event loop)."""
    self.batcher = batching.Batcher(
      self.run,
      max_batch_size=self.options.max_batch_size,
      window_s=self.options.batch_window_ms / 1000,
      max_queue_rows=self.options.max_queue_rows,
      merge=self.options.batching,
      announced=True,
      on_batch=lambda rows, bucket: metrics.batch(self.name, rows, bucket),
    )
    self.batcher.start()
    metrics.queue_rows.labels(self.name).set_function(lambda: self.batcher.queued_rows)  # Read when scraped.

  def warm_up(self) -> None:
    """Compiles every batch bucket by running it once on zeros (a valid row of every input)."""
    for bucket in batching.bucket_sizes(self.options.max_batch_size):
      # A free dimension past the batch axis (a VAE's draws per image) compiles here at size 1; other sizes
      # compile on first use.
      zeros = {
        name: np.zeros(
          (bucket,) if info.per_row else (bucket, *(max(d, 1) for d in info.shape[1:])), info.artifact_dtype
        )
        for name, info in self.function.inputs.items()
      }
      self.run(zeros)
    self.ready = True

  def metadata(self) -> dict:
    """The V2 model metadata response, with gdjax's export metadata under "parameters"."""
    meta = self.model.metadata

    def tensors(infos):
      return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in infos.values()]

    return {
      "name": self.name,
      "versions": ["1"],
      "platform": f"jax_exported_{'_'.join(self.function.exported.platforms)}",
      "inputs": tensors(self.function.inputs),
      "outputs": tensors(self.function.outputs),
      "parameters": {
        "function": self.function.name,
        "task": meta.get("task"),
        "step": meta.get("step"),
        "class_names": meta.get("class_names"),
        "feature_network": meta.get("feature_network"),
        "jax_version": meta.get("jax_version"),
        "serialization_version": meta.get("serialization_version"),
        "max_rows_per_request": self.max_rows,
        "ranges": {t.name: list(t.range) for t in self.function.inputs.values() if t.range},
        "int64_note": meta.get("int64_note"),
      },
    }


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def load_models(directories, options: ServeOptions) -> dict[str, ServedModel]:
  """Every function of every export directory, by V2 name; raises `artifact.ArtifactError` with what to do.

  A directory is named by its base name, or by NAME in `NAME=DIR` (as where a
  platform mounts every model at the same path, KServe's /mnt/models).
  """
  served = {}
  for given in map(str, directories):
    base, separator, path = given.partition("=")
    if not separator or not MODEL_NAME.fullmatch(base):
      base, path = Path(given).resolve().name, given
    directory = Path(path)
    if not MODEL_NAME.fullmatch(base):
      raise artifact.ArtifactError(
        f"{base!r} cannot be a model name (letters, digits, '_', '.', '-'); name it with NAME={directory}."
      )
    model = artifact.load(directory)
    names = list(model.functions)
    for function_name in names:
      name = base if len(names) == 1 else f"{base}.{function_name}"
      if name in served:
        raise artifact.ArtifactError(
          f"Two export directories are both named {base!r}; name one with NAME=DIR (e.g. {base}2={directory})."
        )
      served[name] = ServedModel(name, directory, model, function_name, options)
  return served
