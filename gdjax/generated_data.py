"""Training batches drawn (in part) from a trained conditional generator: "generators teach classifiers".

With `config.dataset.generator_workdir` set, each global training batch of B
rows is `round(B * (1 - generated_fraction))` real rows from the usual
pipeline followed by the rest drawn from the generator of that workdir (its
EMA weights, as `gdjax sample` uses; its `generator_checkpoint`, "best" or
"latest"). `generated_fraction=1.0` trains on generated images only: the
Classification Accuracy Score of Ravuri & Vinyals (2019).

Every generated image is the generator's `sample` inference function at a
documented (seed, sample id, label), so anyone can draw it again:

- "regenerate": fresh images every step. Step s takes sample ids
  `s*G .. s*G+G-1` (G generated rows per batch) under seed `generator_seed`,
  with labels `balanced_labels(G, K, step_rng(generator_seed, s))`: every
  class `G // K` times, `G % K` classes (drawn from the seed and step) once
  more, in an order shuffled from the seed and step.
- "fixed": a pool of N images, as many of each class as the real training
  split (or its `subset_size` subset) has, is sample ids `0 .. N-1` under
  `generator_seed` with labels `pool_labels(counts)` (class 0's first), i.e.
  `TrainedModel(W, which=generator_checkpoint).sample(N, labels=pool_labels(counts), seed=generator_seed)`.
  Each epoch of `N // G` steps takes the pool in the order
  `stratified_order(pool_labels, epoch_rng(generator_seed, epoch))`, which
  spreads every class evenly, so a batch's class counts differ by at most one
  when the classes are equally large. The pool is generated lazily and kept.

Both are pure functions of the seed and the step, so a run resumed at step k
sees what an uninterrupted run sees. Process p of P contributes its p-th block
of the real rows and its p-th block of the generated rows, so the examples of
a global batch do not depend on the number of processes or devices. The
generator runs on one device of this process (its first local one), jitted
once and always called with `CALL_SIZE` rows (padded), several batches at a
time.

`train_batches` and `check_training_plan` are what `gdjax train` calls: they
are `gdjax.data`'s, with the generated rows added when a config names a
generator. This module restores that generator (`run_state`, `tasks`), so it
sits above the tasks; `gdjax.data` reads real data only.

References:
  Ravuri & Vinyals, "Classification Accuracy Score for Conditional Generative
  Models", NeurIPS 2019.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from gdjax import checkpoint, data, parallel, run_state, tasks
from gdjax.errors import CheckpointError, ConfigError

MODES = ("fixed", "regenerate")
CHECKPOINTS = ("best", "latest")
CALL_SIZE = 256  # Rows per generator call: one compiled shape, whatever the batch or process count.
_LABELS_STREAM, _ORDER_STREAM = 0x6E4, 0x9001  # Second words of the seeded NumPy streams: their own draws.


@dataclasses.dataclass(frozen=True)
class GeneratorPlan:
  """What one step takes from the generator, checked against the classifier's dataset."""

  workdir: Path
  checkpoint: str
  mode: str
  seed: int
  num_classes: int
  real_rows: int  # Of the global batch.
  generated_rows: int  # Of the global batch.


def rows_per_batch(global_batch_size: int, fraction: float) -> tuple[int, int]:
  """(real, generated) rows of a batch: real = B * (1 - fraction) rounded half up, generated the rest."""
  real = int(np.floor(global_batch_size * (1.0 - fraction) + 0.5))
  return real, global_batch_size - real


def step_rng(seed: int, step: int) -> np.random.Generator:
  """The NumPy stream of a regenerate-mode step's labels."""
  return np.random.default_rng([seed, step, _LABELS_STREAM])


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
  """The NumPy stream of a fixed-mode epoch's order of the pool."""
  return np.random.default_rng([seed, epoch, _ORDER_STREAM])


def balanced_labels(count: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
  """`count` int32 labels, every class `count // K` times and `count % K` classes chosen by `rng` once more, shuffled."""
  extra = rng.choice(num_classes, count % num_classes, replace=False)
  labels = np.concatenate([np.repeat(np.arange(num_classes), count // num_classes), extra])
  return rng.permutation(labels).astype(np.int32)


def pool_labels(class_counts: np.ndarray) -> np.ndarray:
  """The labels of the fixed pool, sample id by sample id: `counts[0]` zeros, then `counts[1]` ones, ..."""
  return np.repeat(np.arange(len(class_counts)), class_counts).astype(np.int32)


def stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A random order of `range(len(labels))` that spreads each class evenly over it.

  Class c's n_c members are shuffled and the r-th is placed at (r + u_c) / n_c,
  with u_c uniform in [0, 1): equally large classes then come in rounds of one
  member each, so any run of consecutive positions holds every class the same
  number of times, give or take one.
  """
  keys = np.zeros(len(labels))
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    keys[members] = (np.arange(len(members)) + rng.uniform()) / len(members)
  return np.argsort(keys, kind="stable")


def check_training_plan(
  builder: tfds.core.DatasetBuilder,
  dataset_config: ml_collections.ConfigDict,
  *,
  global_batch_size: int,
  total_steps: int,
) -> int:
  """`gdjax.data.check_training_plan`, and the generator's workdir and options when the config names one.

  Returns the number of real training examples. Raises ConfigError, naming
  the flag to set, before anything is written.
  """
  if is_enabled(dataset_config):
    check_generator(
      dataset_config,
      image_shape=data.input_shape(builder, dataset_config),
      num_classes=data.num_classes(builder),
      global_batch_size=global_batch_size,
      total_steps=total_steps,
    )
  return data.check_training_plan(builder, dataset_config, global_batch_size=global_batch_size, total_steps=total_steps)


def train_batches(
  builder: tfds.core.DatasetBuilder,
  dataset_config: ml_collections.ConfigDict,
  *,
  global_batch_size: int,
  seed: int,
  start_step: int = 0,
) -> Iterator[dict]:
  """This process's training batches from `start_step` on: `gdjax.data.train_batches`'s, or, with
  `dataset_config.generator_workdir`, their real rows followed by the generator's (`mixed_batches`)."""
  if not is_enabled(dataset_config):
    return data.train_batches(
      builder, dataset_config, global_batch_size=global_batch_size, seed=seed, start_step=start_step
    )
  real_config = without_generator(dataset_config)
  return mixed_batches(
    dataset_config,
    real_batches=lambda batch_size: data.train_batches(
      builder, real_config, global_batch_size=batch_size, seed=seed, start_step=start_step
    ),
    training_labels=lambda: data.load_training_examples(builder, real_config)["label"],
    image_shape=data.input_shape(builder, dataset_config),
    num_classes=data.num_classes(builder),
    global_batch_size=global_batch_size,
    start_step=start_step,
  )


def is_enabled(dataset_config: ml_collections.ConfigDict) -> bool:
  return bool(dataset_config.get("generator_workdir", ""))


def without_generator(dataset_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of the dataset config that reads only real data."""
  real = ml_collections.ConfigDict(dataset_config.to_dict())
  real.generator_workdir = ""
  return real


def check_generator(
  dataset_config: ml_collections.ConfigDict,
  *,
  image_shape: tuple[int, ...],
  num_classes: int,
  global_batch_size: int,
  total_steps: int | None = None,
) -> GeneratorPlan:
  """Checks the generator options against the classifier's dataset and batch, reading only the generator's config.

  Raises ConfigError, naming the flag to set, for a workdir that is missing,
  holds no conditional generator or no checkpoint, or makes other images or
  classes than the classifier's dataset; for a fraction outside (0, 1], an
  unknown mode or checkpoint, and batches the processes cannot share.
  """
  flag = "--config.dataset.generator_workdir"
  fraction = float(dataset_config.get("generated_fraction", 0.5))
  if not 0.0 < fraction <= 1.0:
    raise ConfigError(
      f"config.dataset.generated_fraction={fraction}: the share of each batch drawn from the generator must lie in "
      "(0, 1]. Set --config.dataset.generated_fraction=0.5 for real:generated 1:1, 1.0 for generated only, or "
      f"{flag}='' to train on real data only."
    )
  mode = dataset_config.get("generated_mode", "fixed")
  if mode not in MODES:
    raise ConfigError(
      f"config.dataset.generated_mode={mode!r} is unknown. Set --config.dataset.generated_mode to one of {MODES}."
    )
  which = dataset_config.get("generator_checkpoint", "best")
  if which not in CHECKPOINTS:
    raise ConfigError(
      f"config.dataset.generator_checkpoint={which!r} is unknown. Set --config.dataset.generator_checkpoint to one of "
      f"{CHECKPOINTS}."
    )
  seed = dataset_config.get("generator_seed", 0)
  if not isinstance(seed, int) or not 0 <= seed < 2**31:
    raise ConfigError(f"config.dataset.generator_seed={seed!r} must be an integer in [0, 2**31).")
  if dataset_config.get("single_pass", False):
    raise ConfigError(
      f"config.dataset.single_pass reads each real example exactly once; it does not combine with {flag}. Set one."
    )
  real, generated = rows_per_batch(global_batch_size, fraction)
  if generated == 0:
    raise ConfigError(
      f"config.dataset.generated_fraction={fraction} leaves no generated row in a batch of {global_batch_size}; "
      f"raise it to at least {1 / global_batch_size:.3g}, or set {flag}=''."
    )
  processes = jax.process_count()
  if real % processes or generated % processes:
    raise ConfigError(
      f"A batch of {global_batch_size} with generated_fraction={fraction} has {real} real and {generated} generated "
      f"rows; each must divide among the {processes} processes. Change --config.batch_size or "
      "--config.dataset.generated_fraction."
    )
  workdir = Path(dataset_config.generator_workdir)
  if not (workdir / checkpoint.CONFIG_FILE).is_file():
    raise ConfigError(
      f"{flag}={str(workdir)!r} holds no {checkpoint.CONFIG_FILE}: it is not a trained gdjax workdir. Point it at "
      "the workdir of a conditional generator, e.g. one trained with `gdjax train --config "
      "configs/cdcgan_fashion_mnist.py --workdir W`."
    )
  try:
    config = checkpoint.read_workdir_config(workdir)
  except CheckpointError as e:
    raise ConfigError(f"{flag}: {e}") from None
  sample = tasks.build_task(config).inference_functions.get("sample")
  if sample is None or "labels" not in sample.inputs:
    what = "no `sample` function (it is not a generator)" if sample is None else "an unconditional generator"
    raise ConfigError(
      f"{flag}={str(workdir)!r} holds a {config.get('task')!r} run with {what}; generated training data needs a "
      "conditional one, whose samples come with labels, e.g. configs/cdcgan_fashion_mnist.py."
    )
  generator_classes = int(config.get("num_classes", 0) or 0)
  if generator_classes != num_classes:
    raise ConfigError(
      f"{flag}={str(workdir)!r} generates {generator_classes} classes, but the classifier's dataset "
      f"{dataset_config.get('name')!r} has {num_classes}. Use a generator trained on the same dataset, or set "
      "--config.dataset.name to the generator's."
    )
  if tuple(config.get("input_shape") or ()) != tuple(image_shape):
    raise ConfigError(
      f"{flag}={str(workdir)!r} generates images of shape {tuple(config.get('input_shape') or ())}, but the "
      f"classifier's dataset has {tuple(image_shape)}. Use a generator trained on the same dataset."
    )
  generator_step(workdir, which)  # Fails, saying so, on a workdir without checkpoints.
  if mode == "regenerate" and total_steps is not None and total_steps * generated >= 2**31:
    raise ConfigError(
      f"{total_steps} steps of {generated} fresh samples need sample ids past 2**31; use fewer steps or "
      "--config.dataset.generated_mode=fixed."
    )
  return GeneratorPlan(workdir.absolute(), which, mode, seed, num_classes, real, generated)


def generator_step(workdir: str | Path, which: str) -> int:
  """The checkpoint step that `which` names in a generator's workdir: "latest", or "best" by the workdir's own
  `checkpoint.best_metric` (the latest where no checkpoint has that metric)."""
  config = checkpoint.read_workdir_config(workdir)
  manager = checkpoint.open_manager(workdir, read_only=True)
  try:
    step = manager.latest_step()
    if which == "best" and config.get("checkpoint"):
      best = checkpoint.best_step(manager, config.checkpoint.best_metric, config.checkpoint.best_mode)
      step = step if best is None else best
  finally:
    manager.close()
  if step is None:
    raise ConfigError(
      f"--config.dataset.generator_workdir={str(workdir)!r} holds no checkpoint yet. Train it first, or point at "
      "a workdir that has one."
    )
  return int(step)


class ConditionalGenerator:
  """A trained conditional generator's `sample` (EMA weights) on this process's first device, in fixed-size calls."""

  def __init__(self, workdir: str | Path, which: str):
    mesh = parallel.make_data_mesh(jax.local_devices()[:1])
    self.step = generator_step(workdir, which)
    _, run = run_state.restore_workdir(workdir, which=self.step, mesh=mesh)
    sample = run.task.inference_functions["sample"]
    self.image_shape = tuple(sample.outputs["images"].shape[1:])
    self.params = run.task.inference_params(run.state, use_ema=True)  # As `gdjax sample` draws them.
    self._sample = jax.jit(sample.fn)

  def __call__(self, seed: int, sample_ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8 images for these sample ids and labels under `seed`."""
    images = []
    for start in range(0, len(sample_ids), CALL_SIZE):
      ids, chunk_labels = sample_ids[start : start + CALL_SIZE], labels[start : start + CALL_SIZE]
      pad = CALL_SIZE - len(ids)
      inputs = {
        "seed": np.int32(seed),
        "sample_ids": np.pad(ids, (0, pad)).astype(np.int32),
        "labels": np.pad(chunk_labels, (0, pad)).astype(np.int32),
      }
      images.append(np.asarray(jax.device_get(self._sample(self.params, inputs)["images"]))[: len(ids)])
    return np.concatenate(images)


class GeneratedInputs:
  """The (sample ids, labels) of the generated rows of each step: a pure function of the plan, the pool and the step."""

  def __init__(self, plan: GeneratorPlan, class_counts: np.ndarray | None = None):
    self.plan = plan
    self.pool_labels = None if plan.mode == "regenerate" else pool_labels(class_counts)
    self._order_epoch, self._order = None, None
    if self.pool_labels is not None and len(self.pool_labels) < plan.generated_rows:
      raise ConfigError(
        f"The fixed pool holds {len(self.pool_labels)} generated images (as many as the real training examples), "
        f"fewer than the {plan.generated_rows} generated rows of a batch. Lower --config.batch_size or use "
        "--config.dataset.generated_mode=regenerate."
      )

  def for_step(self, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample ids and labels of the step's generated rows, all processes' (the global batch's)."""
    rows, seed = self.plan.generated_rows, self.plan.seed
    if self.pool_labels is None:
      ids = step * rows + np.arange(rows, dtype=np.int64)
      return ids, balanced_labels(rows, self.plan.num_classes, step_rng(seed, step))
    epoch, offset = divmod(step, len(self.pool_labels) // rows)
    if epoch != self._order_epoch:
      self._order_epoch, self._order = epoch, stratified_order(self.pool_labels, epoch_rng(seed, epoch))
    ids = self._order[offset * rows : (offset + 1) * rows]
    return ids, self.pool_labels[ids]


def mixed_batches(
  dataset_config: ml_collections.ConfigDict,
  *,
  real_batches: Callable[[int], Iterator[dict]],
  training_labels: Callable[[], np.ndarray],
  image_shape: tuple[int, ...],
  num_classes: int,
  global_batch_size: int,
  start_step: int = 0,
) -> Iterator[dict]:
  """This process's training batches from `start_step` on: its real rows, then its generated rows.

  Args:
    dataset_config: the classifier's `config.dataset`, with the generator options.
    real_batches: `global_batch_size -> iterator` of the real pipeline (this process's rows), started at
      `start_step`; not called when every row is generated.
    training_labels: the labels of the real training examples (after `subset_size`), for the fixed pool's counts.
    image_shape, num_classes: the classifier's dataset's.
  """
  plan = check_generator(
    dataset_config, image_shape=image_shape, num_classes=num_classes, global_batch_size=global_batch_size
  )
  counts = np.bincount(training_labels(), minlength=num_classes) if plan.mode == "fixed" else None
  inputs = GeneratedInputs(plan, counts)
  generator = ConditionalGenerator(plan.workdir, plan.checkpoint)
  real = real_batches(plan.real_rows) if plan.real_rows else None
  return _mix(real, generator, inputs, start_step)


def _mix(real: Iterator[dict] | None, generator: ConditionalGenerator, inputs: GeneratedInputs, start_step: int):
  processes, index = jax.process_count(), jax.process_index()
  local = inputs.plan.generated_rows // processes
  rows = slice(index * local, (index + 1) * local)
  steps_per_call = max(1, CALL_SIZE // local)  # Several batches per generator call.
  pool = None
  if inputs.pool_labels is not None:  # Generated lazily, each pool image once, then kept.
    pool = np.zeros((len(inputs.pool_labels), *generator.image_shape), np.uint8)
    made = np.zeros(len(inputs.pool_labels), bool)
  step = start_step
  while True:
    chunk = [inputs.for_step(s) for s in range(step, step + steps_per_call)]
    ids = [sample_ids[rows] for sample_ids, _ in chunk]
    labels = [step_labels[rows] for _, step_labels in chunk]
    if pool is None:
      images = np.split(generator(inputs.plan.seed, np.concatenate(ids), np.concatenate(labels)), steps_per_call)
    else:
      wanted = np.unique(np.concatenate(ids))
      missing = wanted[~made[wanted]]
      if len(missing):
        pool[missing] = generator(inputs.plan.seed, missing, inputs.pool_labels[missing])
        made[missing] = True
      images = [pool[step_ids] for step_ids in ids]
    for step_images, step_labels in zip(images, labels):
      generated = {"image": step_images, "label": step_labels}
      yield generated if real is None else _concatenate(next(real), generated)
    step += steps_per_call


def _concatenate(real: dict, generated: dict) -> dict:
  unknown = sorted(set(real) - {"image", "label", "mask"})
  if unknown:
    raise ConfigError(
      f"The real batches carry {unknown}, which generated rows cannot supply; "
      "--config.dataset.generator_workdir does not combine with the options that add them."
    )
  batch = {key: np.concatenate([real[key], generated[key].astype(real[key].dtype)]) for key in ("image", "label")}
  if "mask" in real:
    batch["mask"] = np.concatenate([real["mask"], np.ones(len(generated["label"]), real["mask"].dtype)])
  return batch
