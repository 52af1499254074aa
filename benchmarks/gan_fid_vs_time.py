"""FID against training wall-clock minutes: gdjax GAN runs beside the pinned PyTorch reference.

For each gdjax workdir, the training time up to each evaluation is summed
from `metrics.jsonl`'s training rows (steps since the previous row divided
by that row's steps/s, so compilation is counted and evaluation is not), and
the FID is the one the run measured at that step against its evaluation
split (validation, `train[54000:]`, in gdjax's GAN configs). The run's final
test FID (`eval_test.json`) is marked at its step's time. The reference's
rows come from `benchmarks.gan_reference` (`benchmarks/results/
gan_reference_test.json`): FID on the test split against the training
seconds each snapshot recorded, with G's batch norm in inference mode (the
pinned protocol).

Run from the repository root, after the runs and the reference exist:
  python -m benchmarks.gan_fid_vs_time \
    --runs workdirs/sweeps/gan_default/runs/dcgan_fashion_mnist__seed{0,1,2} \
    --reference_seeds 1 2 --out docs/gan_fid_vs_time.png

Both sides' times are as measured on the machine they ran on: compare them
only for runs made on the same, equally loaded machine (the plot's title
names the machine that drew it, and the JSON keeps every point).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import common

REFERENCE = common.RESULTS / "gan_reference_test.json"
PINNED_BATCH_NORM = "running statistics"


def run_curve(workdir: Path) -> dict:
  """`{"steps", "minutes", "fid", "test"}` of one gdjax run: FID at each evaluation against training minutes."""
  metrics_file = workdir / "metrics.jsonl"
  if not metrics_file.is_file():
    raise SystemExit(f"{workdir} has no metrics.jsonl: pass the workdirs of finished `gdjax train` runs.")
  seconds, last_step, minutes_at = 0.0, 0, {}
  points = []
  for line in metrics_file.read_text().splitlines():
    row = json.loads(line)
    if "steps_per_sec" in row and row["step"] > last_step:
      seconds += (row["step"] - last_step) / row["steps_per_sec"]
      last_step = row["step"]
      minutes_at[last_step] = seconds / 60
    if "quality/fid" in row and row.get("split") == "eval":
      points.append((row["step"], row["quality/fid"]))
  points = [(step, fid) for step, fid in points if step in minutes_at]
  test_file = workdir / "eval_test.json"
  test = None
  if test_file.is_file():
    final = json.loads(test_file.read_text())
    test = {"step": final["step"], "minutes": minutes_at.get(final["step"]), "fid": final["quality/fid"]}
  return {
    "workdir": str(workdir),
    "steps": [step for step, _ in points],
    "minutes": [minutes_at[step] for step, _ in points],
    "fid": [fid for _, fid in points],
    "test": test,
  }


def reference_curves(path: Path) -> dict[int, dict]:
  """The reference's `{seed: {"steps", "minutes", "fid"}}`, pinned batch-norm mode, from its results file."""
  if not path.is_file():
    raise SystemExit(f"{path} is missing: run `python -m benchmarks.gan_reference` first.")
  curves: dict[int, dict] = {}
  for row in json.loads(path.read_text())["rows"]:
    if row["batch_norm"] != PINNED_BATCH_NORM:
      continue
    curve = curves.setdefault(row["seed"], {"steps": [], "minutes": [], "fid": []})
    curve["steps"].append(row["step"])
    curve["minutes"].append(row["train_s"] / 60)
    curve["fid"].append(row["fid"])
  return curves


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", nargs="+", required=True, help="gdjax GAN workdirs")
  parser.add_argument("--label", default="gdjax default", help="legend label of the gdjax runs")
  parser.add_argument("--reference", default=str(REFERENCE))
  parser.add_argument(
    "--reference_seeds",
    type=int,
    nargs="*",
    help="the reference's seeds to draw (default: all), e.g. those timed alone",
  )
  parser.add_argument("--out", default="docs/gan_fid_vs_time.png")
  args = parser.parse_args(argv)

  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  runs = [run_curve(Path(workdir)) for workdir in args.runs]
  reference = reference_curves(Path(args.reference))
  if args.reference_seeds:
    missing = sorted(set(args.reference_seeds) - set(reference))
    if missing:
      raise SystemExit(f"{args.reference} has no rows for seeds {missing}; it has {sorted(reference)}.")
    reference = {seed: reference[seed] for seed in args.reference_seeds}
  figure, axes = plt.subplots(figsize=(7, 4.5))
  for index, run in enumerate(runs):
    label = f"{args.label} (validation FID)" if index == 0 else None
    axes.plot(run["minutes"], run["fid"], "o-", color="tab:blue", alpha=0.8, label=label)
    if run["test"] and run["test"]["minutes"] is not None:
      test_label = f"{args.label}, best checkpoint (test FID)" if index == 0 else None
      axes.plot([run["test"]["minutes"]], [run["test"]["fid"]], "*", color="tab:blue", markersize=12, label=test_label)
  for index, (_seed, curve) in enumerate(sorted(reference.items())):
    label = "PyTorch reference, 20,000 steps (test FID)" if index == 0 else None
    axes.plot(curve["minutes"], curve["fid"], "s--", color="tab:orange", alpha=0.8, label=label)
  axes.set_xlabel("training wall-clock, minutes (evaluation excluded)")
  axes.set_ylabel("FID (gdjax evaluator, 10,000 samples)")
  axes.set_ylim(bottom=0)
  axes.grid(alpha=0.3)
  axes.legend()
  axes.set_title(common.machine_description(), fontsize=8)
  figure.tight_layout()
  out = Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(out, dpi=120)
  for run in runs:
    points = ", ".join(f"{s}: {m:.1f} min FID {f:.1f}" for s, m, f in zip(run["steps"], run["minutes"], run["fid"]))
    print(f"{run['workdir']}: {points}; test {run['test']}")
  for seed, curve in sorted(reference.items()):
    points = ", ".join(
      f"{s}: {m:.1f} min FID {f:.1f}" for s, m, f in zip(curve["steps"], curve["minutes"], curve["fid"])
    )
    print(f"reference seed {seed}: {points}")
  print("wrote", out, "and", common.write_results("gan_fid_vs_time", [{"run": r["workdir"], **r} for r in runs]))


if __name__ == "__main__":
  main()
