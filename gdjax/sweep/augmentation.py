"""`gdjax augment`: GAN data augmentation at several label budgets, over seeds, as one command.

  gdjax augment --out DIR [--sizes 540,5400,54000] [--seeds 0,1,2] [--mode fixed|regenerate] [--parallel N]
                [--gan_config configs/cdcgan_fashion_mnist.py] [--classifier_config configs/cnn_fashion_mnist.py]
                [--fraction 0.5] [--generator_checkpoint best|latest]
                [--gan_set FIELD=VALUE ...] [--classifier_set FIELD=VALUE ...]

For every label budget n (`dataset.subset_size`: a class-balanced subset of
the training split, train[:54000], drawn under the run's seed, so that the
three runs of one seed see the same n labelled images) and every seed:
  (a) the conditional GAN trained on those n images only, DIR/gan/runs/<id>/;
  (b) the classifier on the n real images, DIR/real/runs/<id>/;
  (c) the classifier on the same n real images mixed with (a)'s samples
      (`dataset.generated_fraction`, 1:1 by default; gdjax/generated_data.py),
      same steps, batch size and hyperparameters as (b), DIR/mixed/runs/<id>/.
Every run is a `gdjax sweep` run (`gdjax train` then `gdjax eval --split test
--checkpoint best`, resumable, finished runs never retrained). (a) and (b)
run first, `--parallel` at a time, then (c).

Why a command and not a sweep file: a sweep's runs are independent and can
run in any order, while each run of (c) names the workdir of one run of (a)
and must wait for it. So the command plans all three groups as sweeps of
one config each (every override checked before anything runs) and chains
them. DIR/augmentation.json and DIR/augmentation.md hold, per label budget,
the test accuracy of (b) and (c) and (c) minus (b) paired by seed, as mean ±
sd over the seeds, with the GANs' test FID beside them.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gdjax import data
from gdjax.errors import ConfigError
from gdjax.sweep import aggregate, launchers, plan, report, spec
from gdjax.sweep import runs as runs_lib
from gdjax.sweep.cas import ACCURACY, DEFAULT_CLASSIFIER, generator_overrides
from gdjax.sweep.plan import Run

SIZES = (540, 5400, 54_000)  # 1 %, 10 % and 100 % of train[:54000]'s labels.
DEFAULT_GAN = spec.CONFIGS_DIR / "cdcgan_fashion_mnist.py"
FID = "quality/fid"
SIZE_FIELD = "dataset.subset_size"
AUGMENTATION_JSON, AUGMENTATION_MD = "augmentation.json", "augmentation.md"


@dataclasses.dataclass(frozen=True)
class AugmentationPlan:
  """The runs of (a), (b) and (c), and which run of (a) each run of (c) learns from."""

  split_size: int
  sizes: tuple[int, ...]
  fraction: float
  mode: str
  gan: list[Run]
  real: list[Run]
  mixed: list[Run]
  generator_of: dict[str, Run]  # Workdir of a run of (c) -> its run of (a).


def plan_augmentation(
  out: str | Path,
  *,
  sizes: Sequence[int] = SIZES,
  seeds: Sequence[int] = (0, 1, 2),
  gan_config: str | Path = DEFAULT_GAN,
  classifier_config: str | Path = DEFAULT_CLASSIFIER,
  mode: str = "fixed",
  fraction: float = 0.5,
  generator_checkpoint: str = "best",
  gan_set: Sequence[str] = (),
  classifier_set: Sequence[str] = (),
) -> AugmentationPlan:
  """Every run of `gdjax augment`, every override checked; nothing is written."""
  out = Path(out).absolute()
  where = Path.cwd() / "gdjax augment"
  gan_path, classifier_path = (
    spec.resolve_config(str(gan_config), where),
    spec.resolve_config(str(classifier_config), where),
  )
  sizes = tuple(int(n) for n in sizes)
  if not sizes or len(set(sizes)) != len(sizes):
    raise ConfigError(f"--sizes must name distinct subset sizes, e.g. 540,5400,54000; got {sizes}.")
  grid = {SIZE_FIELD: sizes}
  gan_sweep = spec.single_config_sweep(gan_path, seeds, grid=grid, set_flags=gan_set)
  real_sweep = spec.single_config_sweep(classifier_path, seeds, grid=grid, set_flags=classifier_set)
  config, _ = plan.check_overrides(classifier_path, {}, real_sweep.flag_overrides, seed=real_sweep.seeds[0])
  split_size = data.num_examples(data.get_builder(config.dataset), config.dataset.train_split)
  too_large = [n for n in sizes if not 0 < n <= split_size]
  if too_large:
    raise ConfigError(
      f"--sizes {too_large}: the training split has {split_size} examples; give sizes in 1..{split_size}."
    )
  gan_runs = plan.plan_runs(gan_sweep, out / "gan")
  mixed, generator_of = [], {}
  for gan_run in gan_runs:
    overrides = generator_overrides(Path(gan_run.workdir), fraction=fraction, mode=mode, which=generator_checkpoint)
    size = gan_run.setting[SIZE_FIELD]
    sweep = spec.single_config_sweep(
      classifier_path, (gan_run.seed,), grid={SIZE_FIELD: (size,)}, overrides=overrides, set_flags=classifier_set
    )
    (mixed_run,) = plan.plan_runs(sweep, out / "mixed")
    mixed.append(mixed_run)
    generator_of[mixed_run.workdir] = gan_run
  return AugmentationPlan(
    split_size=split_size,
    sizes=sizes,
    fraction=fraction,
    mode=mode,
    gan=gan_runs,
    real=plan.plan_runs(real_sweep, out / "real"),
    mixed=mixed,
    generator_of=generator_of,
  )


def summarize_augmentation(aug: AugmentationPlan, results: Mapping[str, Mapping[str, Any]]) -> dict:
  """Per label budget: the GANs' test FID, (b)'s and (c)'s test accuracy, and (c) - (b) paired by seed.

  `results` are keyed by workdir, as `launchers.run_pending` returns them.
  """
  rows = []
  for size in aug.sizes:
    by_seed = {}
    for group, runs, metric in (
      ("gan_fid", aug.gan, FID),
      ("real", aug.real, ACCURACY),
      ("mixed", aug.mixed, ACCURACY),
    ):
      for run in runs:
        if run.setting[SIZE_FIELD] == size:
          by_seed.setdefault(run.seed, {})[group] = _test_metric(results.get(run.workdir), metric)
    gains = [
      v["mixed"] - v["real"] for v in by_seed.values() if v.get("mixed") is not None and v.get("real") is not None
    ]
    row = {"subset_size": size, "label_fraction": size / aug.split_size}
    for group in ("gan_fid", "real", "mixed"):
      row[group] = aggregate.summarize([v[group] for v in by_seed.values() if v.get(group) is not None])
    row["gain"] = aggregate.summarize(gains)
    row["per_seed"] = [{"seed": seed, **values} for seed, values in sorted(by_seed.items())]
    rows.append(row)
  all_runs = [*aug.gan, *aug.real, *aug.mixed]
  return {
    "metric": ACCURACY,
    "split": "test",
    "generated_fraction": aug.fraction,
    "generated_mode": aug.mode,
    "training_split_size": aug.split_size,
    "rows": rows,
    "runs": {
      group: [{"run_id": r.run_id, "workdir": r.workdir, "command": launchers.shell_command(r)} for r in runs]
      for group, runs in (("gan", aug.gan), ("real", aug.real), ("mixed", aug.mixed))
    },
    "failed": [
      {
        "workdir": r.workdir,
        "error": results.get(r.workdir, {}).get("error", "not run yet."),
        "log": runs_lib.describe(r)["log"],
      }
      for r in all_runs
      if results.get(r.workdir, {}).get("status") != "finished"
    ],
  }


def augmentation_markdown(summary: Mapping[str, Any], *, command: str, when: str, machine: str) -> str:
  lines = [
    "# GAN data augmentation",
    "",
    f"Command: `{command}`",
    "",
    f"Run {when} on {machine}.",
    "",
    f"Each cell: mean ± sample standard deviation (number of seeds). Test {summary['metric']} at the checkpoint "
    f"chosen on the real validation split. Real + generated: a share of {summary['generated_fraction']} of each "
    f"batch drawn from that row's and seed's GAN ({summary['generated_mode']} mode); gain: real + generated minus "
    "real only, paired by seed.",
    "",
  ]
  header = ["labels", "labelled images", "GAN test FID", "real only", "real + generated", "gain"]
  rows = [
    [
      f"{100 * row['label_fraction']:.3g} %",
      str(row["subset_size"]),
      *(report.format_summary(row[group]) for group in ("gan_fid", "real", "mixed", "gain")),
    ]
    for row in summary["rows"]
  ]
  lines += report.markdown_table(header, rows)
  if summary["failed"]:
    lines += ["", f"## Not finished ({len(summary['failed'])})", ""]
    lines += [f"- `{f['workdir']}`: {f['error']} Log: `{f['log']}`" for f in summary["failed"]]
  return "\n".join(lines) + "\n"


def gan_augmentation(
  out: str | Path, *, parallel: int = 1, command: str = "gdjax augment", log=print, **options
) -> dict:
  """Runs (or resumes) (a) and (b), then (c), and writes DIR/augmentation.json and .md; returns the JSON's content.

  `options` are `plan_augmentation`'s.
  """
  out = Path(out).absolute()
  aug = plan_augmentation(out, **options)
  out.mkdir(parents=True, exist_ok=True)
  log("GANs and classifiers on the real subsets:")
  results = launchers.run_pending([*aug.gan, *aug.real], parallel=parallel, log=log)
  ready = [r for r in aug.mixed if results[aug.generator_of[r.workdir].workdir]["status"] == "finished"]
  for run in aug.mixed:
    if run not in ready:
      gan = aug.generator_of[run.workdir]
      results[run.workdir] = {
        **runs_lib.describe(run),
        "status": "failed",
        "error": f"not run: its generator {gan.workdir} did not finish (see its {runs_lib.LOG_FILE}).",
      }
  log("Classifiers on the real subsets mixed with their GAN's samples:")
  results.update(launchers.run_pending(ready, parallel=parallel, log=log))
  summary = {"command": command, **summarize_augmentation(aug, results)}
  when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
  machine = report.machine_description()
  plan.write_json(out / AUGMENTATION_JSON, {**summary, "when": when, "machine": machine})
  (out / AUGMENTATION_MD).write_text(augmentation_markdown(summary, command=command, when=when, machine=machine))
  return summary


def _test_metric(result: Mapping[str, Any] | None, metric: str) -> float | None:
  if not result or result.get("status") != "finished":
    return None
  return result.get("test", {}).get(metric)
