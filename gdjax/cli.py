"""The `gdjax` command: thin sub-commands over the library.

  gdjax train   --config configs/cnn_fashion_mnist.py --workdir W [--config.FIELD=VALUE ...]
  gdjax eval    --workdir W [--split test]
  gdjax predict --workdir W --images X.npy --out P.npy [--probs Q.npy]

Input errors (a bad config field, a missing dataset, a wrong array, a workdir
of another model) print one message that says how to fix them, and exit 2.
"""

from __future__ import annotations

import logging
import os
import sys
import time

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


def _define_eval_flags(fv: flags.FlagValues, argv: list[str]) -> None:
  flags.DEFINE_string("workdir", None, "A workdir written by `gdjax train`.", flag_values=fv)
  flags.DEFINE_string("split", "test", "TFDS split to evaluate on.", flag_values=fv)
  flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"], "Which checkpoint to use.", flag_values=fv)


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
  from gdjax import loop

  _require(fv, "config", "workdir")
  metrics = loop.train_and_evaluate(fv.config, fv.workdir)
  if metrics:
    split = fv.config.dataset.eval_split
    print(
      f"Done. Final {split} metrics: "
      + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    )
  print(f"Checkpoints, metrics.jsonl and TensorBoard logs are in {fv.workdir}")


def _eval(fv: flags.FlagValues) -> None:
  from gdjax import inference

  _require(fv, "workdir")
  model = inference.TrainedModel(fv.workdir, which=fv.checkpoint)
  start = time.perf_counter()
  metrics = model.evaluate(fv.split)
  metrics.update(
    step=model.step, split=fv.split, checkpoint=fv.checkpoint, seconds=round(time.perf_counter() - start, 2)
  )
  path = os.path.join(fv.workdir, f"eval_{fv.split.replace('/', '_')}.json")
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
  np.save(fv.out, result["label"].astype(np.int32))
  print(f"Wrote {len(result['label'])} labels to {fv.out}")
  if fv.probs:
    np.save(fv.probs, result["probabilities"].astype(np.float32))
    print(f"Wrote class probabilities to {fv.probs}")


COMMANDS = {
  "train": (_define_train_flags, _train),
  "eval": (_define_eval_flags, _eval),
  "predict": (_define_predict_flags, _predict),
}


class _MissingFlag(Exception):
  pass


def _require(fv: flags.FlagValues, *names: str) -> None:
  missing = [f"--{n}" for n in names if fv[n].value is None]
  if missing:
    raise _MissingFlag(f"missing required flag(s) {', '.join(missing)}.")


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
    run(fv)
  except (GdjaxError, _MissingFlag) as e:
    print(f"gdjax {command}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"gdjax {command}: interrupted.", file=sys.stderr)
    return 130
  return 0


def _explain_flag_error(error: flags.Error) -> str:
  text = str(error)
  if "Unknown command line flag" in text or "FlagNameConflicts" in text:
    return f"{text}. Run `gdjax {{train,eval,predict}} --helpfull` to list the flags."
  return text


def entry_point() -> None:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow is only the input pipeline.
  sys.exit(main())


if __name__ == "__main__":
  entry_point()
