"""gdjax's naive Bayes and logistic regression against scikit-learn, trained on the same 54,000 images.

For each config (Bernoulli and Gaussian naive Bayes, logistic regression on
binarized pixels and on intensities), `gdjax train` and `gdjax eval --split
test --checkpoint best` run in <out>/<config> (a finished workdir is reused),
and scikit-learn fits its estimator on exactly the same training images, with
the settings read back from the workdir's config.json:

- BernoulliNB(alpha) on pixel / 255 > 0.5;
- GaussianNB(var_smoothing) on pixel / 255;
- LogisticRegression(C, L2, solver="lbfgs", max_iter=--max_iter) on the
  same features; the run fails loudly if it stops without converging.

Prints, and writes to <out>/sklearn_agreement.json, test accuracy of both, the
gap in points, and the fraction of test images on which the two predict the
same label. scikit-learn is a bench extra (`pip install -e .[bench]`), never a
runtime dependency.

Run:
  python -m benchmarks.sklearn_agreement --out workdirs/sklearn_agreement
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import common  # Applies gdjax's XLA flags (before JAX starts a backend).
from gdjax import cli, data, inference

CONFIGS = (
  "naive_bayes_bernoulli_fashion_mnist",
  "naive_bayes_gaussian_fashion_mnist",
  "logistic_regression_binarized_fashion_mnist",
  "logistic_regression_intensity_fashion_mnist",
)


def features(name: str, images: np.ndarray) -> np.ndarray:
  """gdjax.features' transforms in NumPy float64: the inputs scikit-learn gets."""
  x = images.reshape(len(images), -1).astype(np.float64) / 255.0
  if name == "binarized":
    return (x > 0.5).astype(np.float64)
  if name == "intensity":
    return x
  raise ValueError(f"no scikit-learn counterpart for features={name!r}")


def estimator(config: dict, max_iter: int):
  from sklearn import linear_model, naive_bayes

  if config["task"] == "naive_bayes":
    options = config["naive_bayes"]
    if options["kind"] == "bernoulli":
      return naive_bayes.BernoulliNB(alpha=options["alpha"]), f"alpha={options['alpha']:g}"
    if options["kind"] == "gaussian":
      return naive_bayes.GaussianNB(
        var_smoothing=options["var_smoothing"]
      ), f"var_smoothing={options['var_smoothing']:g}"
    raise ValueError(f"no image counterpart for naive Bayes kind {options['kind']!r}")
  return linear_model.LogisticRegression(C=config["C"], solver="lbfgs", max_iter=max_iter), f"C={config['C']:g}"


def train_gdjax(name: str, workdir: Path) -> float:
  """`gdjax train` then `gdjax eval` of configs/<name>.py, unless the workdir is finished; returns seconds."""
  if (workdir / "eval_test.json").exists():
    return (
      json.loads((workdir / "timing.json").read_text())["train_seconds"]
      if (workdir / "timing.json").exists()
      else float("nan")
    )
  config_path = common.REPO / "configs" / f"{name}.py"
  start = time.perf_counter()
  if cli.main(
    ["gdjax", "train", "--config", str(config_path), "--workdir", str(workdir), "--config.progress_bar=False"]
  ):
    raise SystemExit(f"gdjax train failed for {name}; see {workdir}.")
  seconds = time.perf_counter() - start
  if cli.main(["gdjax", "eval", "--workdir", str(workdir), "--split", "test", "--checkpoint", "best"]):
    raise SystemExit(f"gdjax eval failed for {name}; see {workdir}.")
  (workdir / "timing.json").write_text(json.dumps({"train_seconds": round(seconds, 1)}) + "\n")
  return seconds


def objective_change(workdir: Path) -> float | None:
  """Relative change of the training objective between the last two logged records: how converged L-BFGS was."""
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
  values = [r["objective"] for r in records if r.get("split") == "train" and "objective" in r]
  if len(values) < 2:
    return None
  return abs(values[-1] - values[-2]) / abs(values[-1])


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="workdirs/sklearn_agreement")
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--max_iter", type=int, default=5000, help="LogisticRegression's max_iter")
  args = parser.parse_args(argv)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  from sklearn.exceptions import ConvergenceWarning

  rows, splits = [], None
  for name in args.configs.split(","):
    workdir = out / name
    gdjax_seconds = train_gdjax(name, workdir)
    config = json.loads((workdir / "config.json").read_text())
    config = config.get("config", config)
    if splits is None:  # The same TFDS splits the runs read.
      dataset = common.load_config(name).dataset
      builder = data.get_builder(dataset)
      splits = {s: data.load_split(builder, s, whole=True) for s in (dataset.train_split, "test")}
      train, test = splits[dataset.train_split], splits["test"]
    result = json.loads((workdir / "eval_test.json").read_text())
    gdjax_labels = inference.TrainedModel(workdir, which="best").predict(test["image"])["labels"]
    model, setting = estimator(config, args.max_iter)
    cache = workdir / "sklearn_fit.json"  # scikit-learn's fit of this setting, kept: a resumed gdjax run reuses it.
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    if cached.get("setting") == setting and cached.get("max_iter") == args.max_iter:
      sklearn_labels, sklearn_seconds = np.array(cached["labels"]), cached["seconds"]
      model.n_iter_ = np.array([cached["iterations"]])
    else:
      start = time.perf_counter()
      with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # Not converged: stop, do not report.
        model.fit(features(config["features"], train["image"]), train["label"])
      sklearn_seconds = time.perf_counter() - start
      sklearn_labels = model.predict(features(config["features"], test["image"]))
      iterations = int(np.max(getattr(model, "n_iter_", [0])))
      cache.write_text(
        json.dumps(
          {
            "setting": setting,
            "max_iter": args.max_iter,
            "seconds": sklearn_seconds,
            "iterations": iterations,
            "labels": sklearn_labels.tolist(),
          }
        )
      )
    sklearn_accuracy = float(np.mean(sklearn_labels == test["label"]))
    rows.append(
      {
        "config": name,
        "setting": setting,
        "gdjax_test_accuracy": result["classification/accuracy"],
        "sklearn_test_accuracy": sklearn_accuracy,
        "gap_points": round(100 * (result["classification/accuracy"] - sklearn_accuracy), 2),
        "same_label": float(np.mean(np.asarray(gdjax_labels) == sklearn_labels)),
        "gdjax_train_seconds": round(gdjax_seconds, 1),
        "sklearn_fit_seconds": round(sklearn_seconds, 1),
        "sklearn_iterations": int(np.max(getattr(model, "n_iter_", [0]))),
        "gdjax_steps": result["step"],
        "gdjax_last_objective_change": objective_change(workdir),
        "train_examples": len(train["label"]),
      }
    )
    print(json.dumps(rows[-1]), flush=True)
  path = out / "sklearn_agreement.json"
  if path.exists():  # Rows of other configs from earlier invocations stay.
    fresh = {r["config"] for r in rows}
    rows = [r for r in json.loads(path.read_text())["rows"] if r["config"] not in fresh] + rows
    rows.sort(key=lambda r: CONFIGS.index(r["config"]) if r["config"] in CONFIGS else len(CONFIGS))
  payload = {"machine": common.machine_description(), "rows": rows}
  path.write_text(json.dumps(payload, indent=1) + "\n")
  print(f"\n{payload['machine']}\n")
  print("| config | setting | gdjax test acc. | scikit-learn test acc. | gap (points) | same label |")
  print("|---|---|---:|---:|---:|---:|")
  for r in rows:
    print(
      f"| {r['config']} | {r['setting']} | {r['gdjax_test_accuracy']:.4f} | {r['sklearn_test_accuracy']:.4f} | "
      f"{r['gap_points']:+.2f} | {100 * r['same_label']:.2f}% |"
    )


if __name__ == "__main__":
  main()
