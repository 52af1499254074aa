"""`gdjax cas`: a conditional generator's Classification Accuracy Score (Ravuri & Vinyals 2019) as one command.

  gdjax cas --generator_workdir W --out DIR [--classifier_config configs/cnn_fashion_mnist.py]
            [--seeds 0] [--mode fixed|regenerate] [--generator_checkpoint best|latest] [--parallel N]
            [--set FIELD=VALUE ...]

For every seed it trains the classifier config twice, with the same steps,
batch size and hyperparameters: on the generator's samples only
(`dataset.generated_fraction=1.0`, gdjax/generated_data.py), in
DIR/generated/runs/<run_id>/, and on the real training split, in
DIR/real/runs/<run_id>/. Each run is a `gdjax sweep` run: `gdjax train`,
then `gdjax eval --split test --checkpoint best` (the checkpoint chosen on
the real validation images), resumable, finished runs read and never
retrained, so real-data runs already in DIR are reused. The CAS is the
generated-data run's test accuracy; DIR/cas.json holds it, the real-data
accuracy and their ratio per seed and as mean ± sd over the seeds, with the
generator's workdir and checkpoint step, the classifier config, the mode and
every command; DIR/cas.md is the table.

References:
  Ravuri & Vinyals, "Classification Accuracy Score for Conditional Generative
  Models", NeurIPS 2019.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gdjax import data
from gdjax import generated_data as generated
from gdjax.errors import ConfigError
from gdjax.sweep import aggregate, launchers, plan, report, spec
from gdjax.sweep.plan import Run

ACCURACY = "classification/accuracy"  # The test metric of the classifier's `classification` evaluation.
DEFAULT_CLASSIFIER = spec.CONFIGS_DIR / "cnn_fashion_mnist.py"
CAS_JSON, CAS_MD = "cas.json", "cas.md"


@dataclasses.dataclass(frozen=True)
class CasPlan:
  """The runs of a CAS measurement: per seed, one on generated images only and one on the real split."""

  generator_workdir: Path
  generator_checkpoint: str
  generator_step: int
  classifier_config: Path
  mode: str
  generated: list[Run]
  real: list[Run]


def generator_overrides(workdir: Path, *, fraction: float, mode: str, which: str) -> dict[str, Any]:
  """The config fields that make a classifier run train on `workdir`'s samples."""
  return {
    "dataset.generator_workdir": str(Path(workdir).absolute()),
    "dataset.generator_checkpoint": which,
    "dataset.generated_fraction": fraction,
    "dataset.generated_mode": mode,
  }


def check_generator_for(sweep: spec.Sweep) -> None:
  """Checks the generator a one-config sweep's runs train on against their classifier config, as `gdjax train`
  would, before anything runs (the first seed's run; the seed changes nothing checked)."""
  config, _ = plan.check_overrides(sweep.configs[0], sweep.overrides, sweep.flag_overrides, seed=sweep.seeds[0])
  builder = data.get_builder(config.dataset)
  generated.check_generator(
    config.dataset,
    image_shape=data.input_shape(builder, config.dataset),
    num_classes=data.num_classes(builder),
    global_batch_size=config.batch_size,
    total_steps=config.total_steps,
  )


def plan_cas(
  generator_workdir: str | Path,
  out: str | Path,
  *,
  classifier_config: str | Path = DEFAULT_CLASSIFIER,
  seeds: Sequence[int] = (0,),
  mode: str = "fixed",
  generator_checkpoint: str = "best",
  set_flags: Sequence[str] = (),
) -> CasPlan:
  """The runs of `gdjax cas`, every override and the generator checked; nothing is written."""
  out = Path(out).absolute()
  config_path = spec.resolve_config(str(classifier_config), Path.cwd() / "gdjax cas")
  overrides = generator_overrides(Path(generator_workdir), fraction=1.0, mode=mode, which=generator_checkpoint)
  # --set may not touch the generator's fields (refused here), so the two runs differ only in their training data.
  generated_sweep = spec.single_config_sweep(config_path, seeds, overrides=overrides, set_flags=set_flags)
  if not (Path(generator_workdir) / "config.json").is_file():
    raise ConfigError(
      f"--generator_workdir {generator_workdir} holds no config.json: it is not a trained gdjax workdir. Pass the "
      "workdir of a conditional generator, e.g. one trained with `gdjax train --config "
      "configs/cdcgan_fashion_mnist.py --workdir W`."
    )
  check_generator_for(generated_sweep)
  real_sweep = spec.single_config_sweep(config_path, seeds, set_flags=set_flags)
  return CasPlan(
    generator_workdir=Path(generator_workdir).absolute(),
    generator_checkpoint=generator_checkpoint,
    generator_step=generated.generator_step(generator_workdir, generator_checkpoint),
    classifier_config=config_path,
    mode=mode,
    generated=plan.plan_runs(generated_sweep, out / "generated"),
    real=plan.plan_runs(real_sweep, out / "real"),
  )


def summarize_cas(cas_plan: CasPlan, results: Mapping[str, Mapping[str, Any]]) -> dict:
  """Per seed CAS, real accuracy and their ratio (where both runs finished), and mean ± sd over the seeds.

  `results` are keyed by workdir, as `launchers.run_pending` returns them.
  """
  per_seed = []
  for generated_run, real_run in zip(cas_plan.generated, cas_plan.real, strict=True):
    entry = {
      "seed": generated_run.seed,
      "generated_workdir": generated_run.workdir,
      "real_workdir": real_run.workdir,
      "cas": _accuracy(results.get(generated_run.workdir)),
      "real_accuracy": _accuracy(results.get(real_run.workdir)),
    }
    both = entry["cas"] is not None and entry["real_accuracy"] is not None
    entry["ratio"] = entry["cas"] / entry["real_accuracy"] if both else None
    per_seed.append(entry)
  summary = {
    name: aggregate.summarize([e[name] for e in per_seed if e[name] is not None])
    for name in ("cas", "real_accuracy", "ratio")
  }
  failed = [
    {"workdir": workdir, "error": r.get("error", ""), "log": r.get("log", "")}
    for workdir, r in results.items()
    if r.get("status") != "finished"
  ]
  return {
    "generator_workdir": str(cas_plan.generator_workdir),
    "generator_checkpoint": cas_plan.generator_checkpoint,
    "generator_step": cas_plan.generator_step,
    "classifier_config": str(cas_plan.classifier_config),
    "mode": cas_plan.mode,
    "metric": ACCURACY,
    "split": "test",
    "seeds": [r.seed for r in cas_plan.generated],
    "per_seed": per_seed,
    **summary,
    "commands": {
      "generated": [launchers.shell_command(r) for r in cas_plan.generated],
      "real": [launchers.shell_command(r) for r in cas_plan.real],
    },
    "failed": failed,
  }


def cas_markdown(summary: Mapping[str, Any], *, command: str, when: str, machine: str) -> str:
  """cas.md: what was measured, one row per seed and the mean ± sd."""
  lines = [
    "# Classification Accuracy Score",
    "",
    f"Command: `{command}`",
    "",
    f"Run {when} on {machine}.",
    "",
    f"Generator: `{summary['generator_workdir']}`, {summary['generator_checkpoint']} checkpoint (step "
    f"{summary['generator_step']}), EMA weights, {summary['mode']} mode. Classifier: "
    f"`{summary['classifier_config']}`, the same steps, batch and hyperparameters on both training sets; test "
    f"{summary['metric']} at the checkpoint chosen on the real validation split.",
    "",
  ]
  rows = [
    [str(e["seed"]), *(_cell(e[name]) for name in ("cas", "real_accuracy", "ratio"))] for e in summary["per_seed"]
  ]
  rows.append(["mean ± sd", *(report.format_summary(summary[name]) for name in ("cas", "real_accuracy", "ratio"))])
  header = ["seed", "CAS (trained on generated)", "trained on real", "CAS / real"]
  lines += report.markdown_table(header, rows)
  if summary["failed"]:
    lines += ["", f"## Not finished ({len(summary['failed'])})", ""]
    lines += [f"- `{f['workdir']}`: {f['error'] or 'not run yet.'} Log: `{f['log']}`" for f in summary["failed"]]
  return "\n".join(lines) + "\n"


def classification_accuracy_score(
  generator_workdir: str | Path,
  out: str | Path,
  *,
  classifier_config: str | Path = DEFAULT_CLASSIFIER,
  seeds: Sequence[int] = (0,),
  mode: str = "fixed",
  generator_checkpoint: str = "best",
  parallel: int = 1,
  set_flags: Sequence[str] = (),
  command: str = "gdjax cas",
  log=print,
) -> dict:
  """Runs (or resumes) the CAS runs and writes DIR/cas.json and DIR/cas.md; returns cas.json's content."""
  out = Path(out).absolute()
  cas_plan = plan_cas(
    generator_workdir,
    out,
    classifier_config=classifier_config,
    seeds=seeds,
    mode=mode,
    generator_checkpoint=generator_checkpoint,
    set_flags=set_flags,
  )
  out.mkdir(parents=True, exist_ok=True)
  # Real-data runs first: with --parallel 1 a lasting comparison is ready before the generated ones.
  results = launchers.run_pending([*cas_plan.real, *cas_plan.generated], parallel=parallel, log=log)
  summary = {"command": command, **summarize_cas(cas_plan, results)}
  when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
  machine = report.machine_description()
  plan.write_json(out / CAS_JSON, {**summary, "when": when, "machine": machine})
  (out / CAS_MD).write_text(cas_markdown(summary, command=command, when=when, machine=machine))
  return summary


def _accuracy(result: Mapping[str, Any] | None) -> float | None:
  if not result or result.get("status") != "finished":
    return None
  return result.get("test", {}).get(ACCURACY)


def _cell(value: float | None) -> str:
  return "–" if value is None else f"{value:.4f}"
