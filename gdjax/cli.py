"""The `gdjax` command: thin sub-commands over the library.

  gdjax train   --config configs/cnn_fashion_mnist.py --workdir W [--config.FIELD=VALUE ...]
                [--coordinator_address HOST:PORT --num_processes N --process_id I]
  gdjax eval    --workdir W [--split test] [--checkpoint latest|best] [--evals NAME,...] [--out F.json]
  gdjax predict --workdir W --images X.npy --out P.npy [--probs Q.npy]
  gdjax sample  --workdir W --num N --out S.npy [--seed S] [--labels 0,1,2] [--raw_weights] [--grid S.png]
  gdjax sweep   --sweep configs/sweeps/NAME.py --out DIR [--parallel N] [--launcher local|ray] [--ray_address A]
                [--seeds 0,1,2] [--set FIELD=VALUE ...] [--print_commands | --aggregate_only]
  gdjax cas     --generator_workdir W --out DIR [--classifier_config C.py] [--seeds 0] [--mode fixed|regenerate]
                [--generator_checkpoint best|latest] [--parallel N] [--set FIELD=VALUE ...]
  gdjax augment --out DIR [--sizes 540,5400,54000] [--seeds 0,1,2] [--mode fixed|regenerate] [--parallel N]
                [--gan_config G.py] [--classifier_config C.py] [--fraction 0.5] [--gan_set ...] [--classifier_set ...]
  gdjax export  --workdir W --out DIR [--checkpoint latest|best] [--format jax,saved_model]
  gdjax serve   [NAME=]DIR ... [--host 127.0.0.1] [--port 8080] [--token T | $GDJAX_SERVE_TOKEN]
                [--max_batch_size 64] [--batch_window_ms 2] [--nobatching] [--max_queue_rows 512] ...

Input errors (a bad config field, a missing dataset, a wrong array, a workdir
of another model or in use by another run) print one message that says how to
fix them, and exit 2. SIGTERM during `gdjax train` saves a checkpoint and
exits 0; the same command resumes.

A multi-process `gdjax train` (several hosts, or several processes on one)
joins JAX's distributed runtime first: on a Cloud TPU VM by itself, elsewhere
from --coordinator_address, --num_processes and --process_id (or
$GDJAX_COORDINATOR_ADDRESS, $GDJAX_NUM_PROCESSES, $GDJAX_PROCESS_ID).
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path

from absl import flags
from ml_collections import config_flags

USAGE = __doc__


def _define_train_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  config_flags.DEFINE_config_file(
    "config",
    None,
    "Python config file, e.g. configs/cnn_fashion_mnist.py.",
    flag_values=fv,
    lock_config=True,
    sys_argv=argv,  # Override flags (--config.x.y=...) are found in these args.
  )
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.", flag_values=fv)
  flags.DEFINE_string(
    "coordinator_address",
    None,
    "Multi-process runs: host:port of process 0 (default $GDJAX_COORDINATOR_ADDRESS). "
    "Not needed on Cloud TPU VMs, where JAX finds the workers itself.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "num_processes", None, "Multi-process runs: how many processes (default $GDJAX_NUM_PROCESSES).", flag_values=fv
  )
  flags.DEFINE_integer(
    "process_id", None, "Multi-process runs: this process's id, 0..N-1 (default $GDJAX_PROCESS_ID).", flag_values=fv
  )


def _define_eval_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  flags.DEFINE_string("workdir", None, "A workdir written by `gdjax train`.", flag_values=fv)
  flags.DEFINE_string(
    "split",
    "test",
    "TFDS split that replaces the split of every evaluation that has one (the classifier's data, the GAN's "
    "reference images).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "checkpoint", "latest", ["latest", "best"], "Which checkpoint: the last, or the best on validation.", flag_values=fv
  )
  flags.DEFINE_list("evals", None, "Only these entries of the run's config.evals (default: all).", flag_values=fv)
  flags.DEFINE_string(
    "out", None, "Where to write the JSON (default: eval_<split>.json in the workdir).", flag_values=fv
  )
  flags.DEFINE_bool(
    "pictures",
    False,
    "Also write the pictures of evaluators that draw (sample grids; a VAE's reconstructions, interpolations and "
    "2-D latent plot) of --split into the workdir's samples/, named *_<split>.png.",
    flag_values=fv,
  )


def _define_predict_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  flags.DEFINE_string("workdir", None, "A workdir written by `gdjax train`.", flag_values=fv)
  flags.DEFINE_string("images", None, "A .npy file of uint8 images, (N, 28, 28) or (N, 28, 28, 1).", flag_values=fv)
  flags.DEFINE_string("out", None, "Where to write the predicted labels (.npy, int32 [N]).", flag_values=fv)
  flags.DEFINE_string(
    "probs", None, "If set, where to write class probabilities (.npy, float32 [N, classes]).", flag_values=fv
  )
  flags.DEFINE_integer("batch_size", 1000, "Images per forward pass.", flag_values=fv)
  flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"], "Which checkpoint to use.", flag_values=fv)


def _train(fv: flags.FlagValues) -> None:
  import jax

  from gdjax import loop, parallel

  _require(fv, "config", "workdir")
  # Before anything touches a device: a multi-process run must first join the others.
  parallel.initialize_distributed(fv.coordinator_address, fv.num_processes, fv.process_id)
  main_process = jax.process_index() == 0
  try:
    metrics = loop.train_and_evaluate(fv.config, fv.workdir)
  except loop.TrainingPreempted as e:
    if main_process:
      print(f"gdjax train: {e}; re-run the same command to resume.", flush=True)
    return
  if not main_process:
    return
  if metrics:
    numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    print(
      "Done. Final evaluation: "
      + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in numeric.items())
    )
  print(f"Checkpoints, metrics.jsonl and TensorBoard logs are in {fv.workdir}")


def _eval(fv: flags.FlagValues) -> None:
  from gdjax import inference

  _require(fv, "workdir")
  model = inference.TrainedModel(fv.workdir, which=fv.checkpoint)
  split = fv.split
  start = time.perf_counter()
  metrics = model.evaluate(split, only=fv.evals, pictures=fv.pictures)
  metrics.update(step=model.step, split=split, checkpoint=fv.checkpoint, seconds=round(time.perf_counter() - start, 2))
  path = fv.out or os.path.join(fv.workdir, "eval_" + inference.file_name_part(split) + ".json")
  inference.write_json(path, metrics)
  print(", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
  print(f"Wrote {path}")


def _predict(fv: flags.FlagValues) -> None:
  import numpy as np

  from gdjax import inference

  _require(fv, "workdir", "images", "out")
  images = inference.load_npy(fv.images)
  model = inference.TrainedModel(fv.workdir, which=fv.checkpoint)
  result = model.predict(images, batch_size=fv.batch_size)
  np.save(fv.out, result["labels"].astype(np.int32))
  print(f"Wrote {len(result['labels'])} labels to {fv.out}")
  if fv.probs:
    np.save(fv.probs, result["probabilities"].astype(np.float32))
    print(f"Wrote class probabilities to {fv.probs}")


def _define_sample_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  flags.DEFINE_string(
    "workdir", None, "A workdir of a generator (GAN or VAE) written by `gdjax train`.", flag_values=fv
  )
  flags.DEFINE_integer("num", 64, "How many images to generate: sample ids 0..num-1.", flag_values=fv)
  flags.DEFINE_string("out", None, "Where to write the images (.npy, uint8 [N, 28, 28, 1]).", flag_values=fv)
  flags.DEFINE_list("labels", None, "Conditional GANs: classes to generate, repeated cyclically.", flag_values=fv)
  flags.DEFINE_integer(
    "seed", 0, "Noise seed (32-bit, may be negative); the evaluators draw theirs with seed 0.", flag_values=fv
  )
  flags.DEFINE_bool("raw_weights", False, "Use the raw generator instead of its EMA.", flag_values=fv)
  flags.DEFINE_string("grid", None, "If set, also write the images as a PNG grid here.", flag_values=fv)
  flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"], "Which checkpoint to use.", flag_values=fv)


def _sample(fv: flags.FlagValues) -> None:
  import numpy as np

  from gdjax import inference, samples

  _require(fv, "workdir", "out")
  if fv.num < 1:
    raise _UsageError("--num must be at least 1.")
  try:
    labels = [int(x) for x in fv.labels] if fv.labels else None
  except ValueError:
    raise _UsageError(f"--labels must be comma-separated class ids, e.g. 0,3,7; got {','.join(fv.labels)}.") from None
  model = inference.TrainedModel(fv.workdir, which=fv.checkpoint)
  images = model.sample(fv.num, labels=labels, seed=fv.seed, use_ema=not fv.raw_weights)
  np.save(fv.out, images)
  print(f"Wrote {len(images)} samples {images.shape} {images.dtype} to {fv.out}")
  if fv.grid:
    print(f"Wrote a grid to {samples.save_image_grid(images, fv.grid)}")


def _define_sweep_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  from gdjax.sweep import cli as sweep_cli

  sweep_cli.define_flags(fv, argv)


def _sweep(fv: flags.FlagValues) -> int:
  from gdjax.sweep import cli as sweep_cli

  return sweep_cli.run(fv)  # 1 if any run failed.


def _define_generated_data_flags(fv: flags.FlagValues) -> None:
  """Flags that `gdjax cas` and `gdjax augment` share."""
  flags.DEFINE_string("out", None, "Directory for the runs and the tables.", flag_values=fv)
  flags.DEFINE_string(
    "classifier_config",
    "cnn_fashion_mnist",
    "The classifier config, trained as it is: a name in configs/ or a path.",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "mode",
    "fixed",
    ["fixed", "regenerate"],
    "fixed: a pool of generated images as large as the real training set, per class; regenerate: fresh ones "
    "every step.",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "generator_checkpoint", "best", ["best", "latest"], "The generator's checkpoint to sample.", flag_values=fv
  )
  flags.DEFINE_integer("parallel", 1, "Runs at once, as local processes.", lower_bound=1, flag_values=fv)


def _define_cas_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  flags.DEFINE_string("generator_workdir", None, "A trained conditional generator's workdir.", flag_values=fv)
  _define_generated_data_flags(fv)
  flags.DEFINE_list("seeds", ["0"], "Seeds of the classifier runs, e.g. 0,1,2.", flag_values=fv)
  flags.DEFINE_multi_string(
    "set",
    [],
    "FIELD=VALUE: an override for every classifier run (repeatable), e.g. --set total_steps=300.",
    flag_values=fv,
  )


def _cas(fv: flags.FlagValues) -> int:
  from gdjax.sweep import cas

  _require(fv, "generator_workdir", "out")
  summary = cas.classification_accuracy_score(
    fv.generator_workdir,
    fv.out,
    classifier_config=fv.classifier_config,
    seeds=_integers(fv, "seeds"),
    mode=fv.mode,
    generator_checkpoint=fv.generator_checkpoint,
    parallel=fv.parallel,
    set_flags=fv.set,
    command=_command_line(fv, "cas"),
  )
  print((Path(fv.out) / cas.CAS_MD).read_text())
  return 1 if summary["failed"] else 0


def _define_augment_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  _define_generated_data_flags(fv)
  flags.DEFINE_list(
    "sizes", ["540", "5400", "54000"], "Labelled training images (dataset.subset_size).", flag_values=fv
  )
  flags.DEFINE_list(
    "seeds", ["0", "1", "2"], "Seeds: each draws its own subsets, GANs and classifiers.", flag_values=fv
  )
  flags.DEFINE_string(
    "gan_config", "cdcgan_fashion_mnist", "The conditional GAN config: a name in configs/ or a path.", flag_values=fv
  )
  flags.DEFINE_float(
    "fraction", 0.5, "Share of each batch drawn from the GAN (0.5: real:generated 1:1).", flag_values=fv
  )
  flags.DEFINE_multi_string("gan_set", [], "FIELD=VALUE: an override for every GAN run (repeatable).", flag_values=fv)
  flags.DEFINE_multi_string(
    "classifier_set", [], "FIELD=VALUE: an override for every classifier run (repeatable).", flag_values=fv
  )


def _augment(fv: flags.FlagValues) -> int:
  from gdjax.sweep import augmentation

  _require(fv, "out")
  summary = augmentation.gan_augmentation(
    fv.out,
    sizes=_integers(fv, "sizes"),
    seeds=_integers(fv, "seeds"),
    gan_config=fv.gan_config,
    classifier_config=fv.classifier_config,
    mode=fv.mode,
    fraction=fv.fraction,
    generator_checkpoint=fv.generator_checkpoint,
    gan_set=fv.gan_set,
    classifier_set=fv.classifier_set,
    parallel=fv.parallel,
    command=_command_line(fv, "augment"),
  )
  print((Path(fv.out) / augmentation.AUGMENTATION_MD).read_text())
  return 1 if summary["failed"] else 0


def _define_export_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  flags.DEFINE_string("workdir", None, "A workdir written by `gdjax train`.", flag_values=fv)
  flags.DEFINE_string(
    "out", None, "The export directory (new, empty, or an earlier export to replace).", flag_values=fv
  )
  flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"], "Which checkpoint to export.", flag_values=fv)
  flags.DEFINE_list(
    "format",
    ["jax"],
    "jax (jax.export artifacts, always written) and saved_model (also a TF SavedModel).",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "platforms", ["cpu", "cuda", "tpu"], "Platforms to lower for (TPU is dropped if jax cannot).", flag_values=fv
  )


def _export(fv: flags.FlagValues) -> None:
  from gdjax.serving import export

  _require(fv, "workdir", "out")
  metadata = export.export_workdir(
    fv.workdir, fv.out, which=fv.checkpoint, formats=tuple({"jax", *fv.format}), platforms=tuple(fv.platforms)
  )
  for name, function in metadata["functions"].items():
    print(f"Wrote {name} ({', '.join(function['platforms'])}) to {os.path.join(fv.out, function['artifact'])}")
  print(f"Metadata: {os.path.join(fv.out, 'gdjax_export.json')}; serve it with `gdjax serve {fv.out}`.")


_SERVE_ARGV: list[str] = []  # `gdjax serve [NAME=]DIR ...`: the directories are the positional arguments.


def _define_serve_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  _SERVE_ARGV[:] = argv
  flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0 only inside a container).", flag_values=fv)
  flags.DEFINE_integer("port", 8080, "Port to listen on.", flag_values=fv)
  flags.DEFINE_string(
    "token", None, "Bearer token that guards the inference endpoints (default $GDJAX_SERVE_TOKEN).", flag_values=fv
  )
  flags.DEFINE_integer("max_batch_size", 64, "Largest batch; buckets are the powers of two below it.", flag_values=fv)
  flags.DEFINE_float("batch_window_ms", 2.0, "How long a batch waits for more requests.", flag_values=fv)
  flags.DEFINE_bool(
    "batching", True, "Merge concurrent requests into batches (--nobatching: one at a time).", flag_values=fv
  )
  flags.DEFINE_integer("max_queue_rows", 512, "Rows that may wait; beyond, requests get 429.", flag_values=fv)
  flags.DEFINE_integer("max_images_per_request", 64, "Images one classify request may hold.", flag_values=fv)
  flags.DEFINE_integer("max_samples_per_request", 256, "Samples one sample request may ask for.", flag_values=fv)
  flags.DEFINE_integer("max_body_bytes", 4 * 2**20, "Largest request body; beyond, 413.", flag_values=fv)
  flags.DEFINE_float("request_timeout_s", 30.0, "A request not answered by then gets 504.", flag_values=fv)


def _serve(fv: flags.FlagValues) -> int:
  from gdjax.serving import runtime, server

  directories = fv(_SERVE_ARGV)[1:]
  if not directories:
    raise _UsageError("name at least one export directory: `gdjax serve [NAME=]DIR [[NAME=]DIR ...]`.")
  names = ("max_batch_size", "batch_window_ms", "batching", "max_queue_rows", "max_images_per_request")
  names += ("max_samples_per_request", "max_body_bytes", "request_timeout_s", "token")
  try:
    options = runtime.ServeOptions.with_token_from_env(**{name: fv[name].value for name in names})
  except ValueError as e:
    raise _UsageError(str(e)) from None
  return server.serve(directories, options, host=fv.host, port=fv.port)


COMMANDS = {
  "train": (_define_train_flags, _train),
  "eval": (_define_eval_flags, _eval),
  "predict": (_define_predict_flags, _predict),
  "sample": (_define_sample_flags, _sample),
  "sweep": (_define_sweep_flags, _sweep),
  "cas": (_define_cas_flags, _cas),
  "augment": (_define_augment_flags, _augment),
  "export": (_define_export_flags, _export),
  "serve": (_define_serve_flags, _serve),
}


class _UsageError(Exception):
  pass


def _require(fv: flags.FlagValues, *names: str) -> None:
  missing = [f"--{n}" for n in names if fv[n].value is None]
  if missing:
    raise _UsageError(f"missing required flag(s) {', '.join(missing)}.")


def _integers(fv: flags.FlagValues, name: str) -> tuple[int, ...]:
  try:
    return tuple(int(v) for v in fv[name].value)
  except ValueError:
    raise _UsageError(
      f"--{name} must be comma-separated integers, e.g. 0,1,2; got {','.join(fv[name].value)}."
    ) from None


def _command_line(fv: flags.FlagValues, command: str) -> str:
  """`gdjax COMMAND` with the flags that were given, for the top of a results table."""
  words = ["gdjax", command]
  for name in fv:
    flag = fv[name]
    if not flag.present:
      continue
    if isinstance(flag, flags.MultiFlag):
      words += [f"--{name}={value}" for value in flag.value]
    elif isinstance(flag.value, list):
      words.append(f"--{name}={','.join(flag.value)}")
    else:
      words.append(f"--{name}={flag.value}")
  return shlex.join(words)


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(USAGE)
    return 0 if len(argv) >= 2 else 2
  command = argv[1]
  if command not in COMMANDS:
    print(f"gdjax: unknown command {command!r}; use one of {', '.join(COMMANDS)}.\n{USAGE}", file=sys.stderr)
    return 2
  define_flags, run = COMMANDS[command]
  fv = flags.FlagValues()
  command_argv = [f"gdjax {command}", *argv[2:]]
  define_flags(fv, command_argv)
  try:
    fv(command_argv)
  except flags.Error as e:
    print(f"gdjax {command}: {_explain_flag_error(e)}", file=sys.stderr)
    return 2
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for an override of a field the config does
    # not have, or of the wrong type.
    message = str(e.args[0] if e.args else e).strip("'").replace("\\'", "'").replace("\\n", " ")
    print(
      f"gdjax {command}: bad config override: {str(message).strip()}\n"
      "Overrides must name an existing field with a value of its type, e.g. "
      "--config.optimizer.learning_rate=1e-3. Add new fields in the config file.",
      file=sys.stderr,
    )
    return 2
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  for noisy in ("absl", "orbax", "jax", "tensorflow"):
    logging.getLogger(noisy).setLevel(logging.ERROR)
  from gdjax.errors import GdjaxError

  try:
    status = run(fv)
  except (GdjaxError, _UsageError) as e:
    print(f"gdjax {command}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"gdjax {command}: interrupted.", file=sys.stderr)
    return 130
  return int(status or 0)


def _explain_flag_error(error: flags.Error) -> str:
  text = str(error)
  if "Unknown command line flag" in text or "FlagNameConflicts" in text:
    return f"{text}. Run `gdjax {{{','.join(COMMANDS)}}} --helpfull` to list the flags."
  return text


def entry_point() -> None:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow is only the input pipeline.
  from gdjax import xla_flags

  xla_flags.apply_defaults()  # Before anything starts a JAX backend.
  sys.exit(main())


if __name__ == "__main__":
  entry_point()
