"""Ng & Jordan's learning curves: naive Bayes against logistic regression from 10 to 54,000 training images.

The runs are those of two `gdjax sweep` files, configs/sweeps/learning_curves_naive_bayes.py
and configs/sweeps/learning_curves_logistic_regression.py: every config x
training-set size x regularisation value x seed, each with exactly the config
`gdjax train` would build for it (`gdjax.sweep.plan`). `gdjax sweep` can run
them one process per run; at about 30 s of process start and data loading per
run, the 480 runs take hours on a 2-core CPU. This script runs the same
configs through the same task interface in one process, with the data loaded
once: each run builds its task (`tasks.build_task`), its state
(`run_state.create_or_restore`) and its compiled step
(`parallel.compile_train_step`), trains on the class-balanced subset the
pipeline would draw (`data.class_balanced_subset` under the run's seed) in
the pipeline's batches, and evaluates the task's `predict` on the validation
split (train[54000:]) and the test split.

- Naive Bayes: one pass, batches of `batch_size`, the last one padded and masked.
- Logistic regression: full-batch L-BFGS (the config's `batch_size` is the
  subset), the five seeds of one (size, C) at once under `jax.vmap` of the
  task's `train_step`, until every seed's objective changes by less than
  `--tolerance` (relative) over 10 steps, or `total_steps`. Each run records
  its steps, objective and last gradient norm.
- At 54,000 every seed's subset is the whole split, so one fit (seed 0)
  stands for all five; its sd is 0.

For each config and size, the regularisation value (C, or var_smoothing)
with the best mean validation accuracy over the seeds is kept, and its test
error is reported as mean +- sd over the seeds. Writes <out>/runs.json (every
run), <out>/learning_curves.md (the table and the crossovers),
<out>/learning_curves.json and <out>/learning_curves.png (both pairs, bands of
+- 1 sd).

Run:
  python -m benchmarks.learning_curves --out workdirs/learning_curves
  (--seeds 0,1, --sizes 10,117, --configs NAME,... or --values C,... run part of it; finished
  runs in runs.json are kept, so an interrupted run resumes, and the table covers every run there.)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks import common  # Applies gdjax's XLA flags (before JAX starts a backend).
from gdjax import data, parallel, run_state, tasks
from gdjax.errors import ConfigError
from gdjax.sweep import plan, spec

SWEEPS = (
  common.REPO / "configs" / "sweeps" / "learning_curves_naive_bayes.py",
  common.REPO / "configs" / "sweeps" / "learning_curves_logistic_regression.py",
)
# (generative, discriminative): the pairs compared, by config name.
PAIRS = (
  ("naive_bayes_bernoulli_fashion_mnist", "logistic_regression_binarized_fashion_mnist"),
  ("naive_bayes_gaussian_fashion_mnist", "logistic_regression_intensity_fashion_mnist"),
)
LABELS = {
  "naive_bayes_bernoulli_fashion_mnist": "Bernoulli naive Bayes (binarized)",
  "logistic_regression_binarized_fashion_mnist": "logistic regression (binarized)",
  "naive_bayes_gaussian_fashion_mnist": "Gaussian naive Bayes (intensities)",
  "logistic_regression_intensity_fashion_mnist": "logistic regression (intensities)",
}
REGULARISATION = {"naive_bayes": "naive_bayes.var_smoothing", "classifier": "C"}
SHORT = {"naive_bayes.var_smoothing": "var_smoothing", "naive_bayes.alpha": "alpha", "C": "C"}


def regularisation_field(config) -> str:
  """The field that sets the run's regularisation: C, var_smoothing, or alpha for Bernoulli and multinomial."""
  if config["task"] == "naive_bayes" and config["naive_bayes"]["kind"] != "gaussian":
    return "naive_bayes.alpha"
  return REGULARISATION[config["task"]]


EVAL_CHUNK = 2000


def run_config(run: plan.Run):
  """The config `gdjax train` builds from the run's command line."""
  texts = dict(arg[len("--config.") :].split("=", 1) for arg in run.train_command if arg.startswith("--config."))
  return plan.parse_flags(Path(run.config), texts, where=run.run_id)


class Data:
  """The training split, validation and test arrays, loaded once."""

  def __init__(self, config):
    builder = data.get_builder(config.dataset)
    self.train = data.load_split(builder, config.dataset.train_split, whole=True)
    self.validation = data.load_split(builder, config.dataset.eval_split, whole=True)
    self.test = data.load_split(builder, "test", whole=True)
    self.input_shape = data.input_shape(builder, config.dataset)
    self.num_classes = data.num_classes(builder)


def accuracy(task, params, split: dict) -> float:
  predict = jax.jit(task.inference_functions["predict"].fn)
  images, labels = split["image"], split["label"]
  correct = 0
  for start in range(0, len(labels), EVAL_CHUNK):
    batch = data.pad_batch({"image": images[start : start + EVAL_CHUNK]}, EVAL_CHUNK)
    predicted = np.asarray(predict(params, {"images": batch["image"]})["labels"])
    correct += int(np.sum(predicted[: min(EVAL_CHUNK, len(labels) - start)] == labels[start : start + EVAL_CHUNK]))
  return correct / len(labels)


def prepare(config, arrays: Data):
  """The run's task, bound to the dataset's shape and classes."""
  config.input_shape = arrays.input_shape
  if "num_classes" in config:
    config.num_classes = arrays.num_classes
  return tasks.build_task(config)


def subset(config, arrays: Data) -> tuple[np.ndarray, np.ndarray]:
  """The class-balanced subset the pipeline draws for this config (`dataset.subset_size`, `subset_seed`)."""
  chosen = data.class_balanced_subset(
    arrays.train["label"], int(config.dataset.subset_size), int(config.dataset.subset_seed)
  )
  return arrays.train["image"][chosen], arrays.train["label"][chosen]


def fit_naive_bayes(config, arrays: Data):
  """One padded, masked pass in the config's batches, through the compiled step of `gdjax train`."""
  task = prepare(config, arrays)
  images, labels = subset(config, arrays)
  mesh = parallel.make_data_mesh(jax.devices()[:1])
  run = run_state.create_or_restore(task, mesh, image_shape=arrays.input_shape, seed=int(config.seed))
  step = parallel.compile_train_step(task, run.shapes, mesh)
  sharding, state, key = parallel.batch_sharding(mesh), run.state, jax.random.key(int(config.seed))
  n, batch_size = len(labels), int(config.batch_size)
  for start in range(0, n, batch_size):
    batch = data.pad_batch(
      {"image": images[start : start + batch_size], "label": labels[start : start + batch_size]}, batch_size
    )
    state, _ = step(state, parallel.to_global_batch(batch, sharding), key)
  return task, state, {"train_examples": n, "steps": math.ceil(n / batch_size)}


def fit_logistic_regression(configs: list, arrays: Data, *, tolerance: float):
  """Full-batch L-BFGS for several seeds of one (config, size, C) at once: the task's step under `jax.vmap`.

  Stops when every seed's objective changed by less than `tolerance`
  (relative) over the last 10 steps, or at `total_steps`. Returns the task,
  the per-seed states and per-seed fit information.
  """
  task = prepare(configs[0], arrays)
  n, total_steps = int(configs[0].dataset.subset_size), int(configs[0].total_steps)
  if int(configs[0].batch_size) != n:
    raise ConfigError(f"a learning-curve run trains full batch; batch_size={configs[0].batch_size} but {n} examples.")
  seeds = [int(c.seed) for c in configs]
  pairs = [subset(c, arrays) for c in configs]
  batch = {"image": np.stack([p[0] for p in pairs]), "label": np.stack([p[1] for p in pairs])}
  keys = jax.vmap(lambda s: run_state.root_keys(s)[0])(np.array(seeds))
  state = jax.jit(jax.vmap(lambda k: task.init_state(k, arrays.input_shape)))(keys)
  step = jax.jit(jax.vmap(task.train_step, in_axes=(0, 0, None)), donate_argnums=0)
  rng, previous = jax.random.key(seeds[0]), None
  for i in range(total_steps):
    state, metrics = step(state, batch, rng)
    if i % 10 == 9:
      objective = np.asarray(metrics["objective"], np.float64)
      if previous is not None and np.all(np.abs(previous - objective) <= tolerance * np.abs(objective)):
        break
      previous = objective
  grad_norm = np.asarray(metrics["grad_norm"])
  objective = np.asarray(metrics["objective"])
  infos = [
    {
      "train_examples": n,
      "steps": i + 1,
      "objective": float(objective[j]),
      "grad_norm": float(grad_norm[j]),
      "tolerance": tolerance,
    }
    for j in range(len(seeds))
  ]
  states = [jax.tree.map(lambda x, j=j: x[j], state) for j in range(len(seeds))]
  return task, states, infos


def run_all(runs, configs: dict, arrays: Data, results: dict, *, tolerance: float, save) -> None:
  """Fits and evaluates every run not in `results` yet, saving after each group."""
  nb_states = {}  # (config, size, seed) -> (state, info): var_smoothing changes no sufficient statistic.
  groups = {}
  for run in runs:
    if run.run_id not in results:
      groups.setdefault(run.group_id, []).append(run)
  for number, group in enumerate(groups.values()):
    start = time.perf_counter()
    group_configs = [configs[r.run_id] for r in group]
    if group_configs[0].task == "naive_bayes":
      fitted = []
      for run, config in zip(group, group_configs):
        key = (run.config_name, int(config.dataset.subset_size), int(config.seed))
        if key not in nb_states:
          task, state, info = fit_naive_bayes(config, arrays)
          nb_states[key] = (state, info)
        fitted.append((prepare(config, arrays), *nb_states[key]))
    else:
      task, states, infos = fit_logistic_regression(group_configs, arrays, tolerance=tolerance)
      fitted = [(task, state, info) for state, info in zip(states, infos)]
    seconds = round((time.perf_counter() - start) / len(group), 2)
    for run, config, (task, state, info) in zip(group, group_configs, fitted):
      params = jax.jit(task.inference_params)(state)
      regularisation = regularisation_field(config)
      results[run.run_id] = {
        "config": run.config_name,
        "task": config.task,
        "size": int(config.dataset.subset_size),
        "seed": int(config.seed),
        "regularisation": regularisation,
        "value": float(plan.get_field(config, regularisation)),
        "validation_accuracy": accuracy(task, params, arrays.validation),
        "test_accuracy": accuracy(task, params, arrays.test),
        "seconds": seconds,
        **info,
      }
    r = results[group[0].run_id]
    accuracies = [results[x.run_id]["validation_accuracy"] for x in group]
    print(
      f"[{number + 1}/{len(groups)}] {r['config']} n={r['size']} {r['regularisation']}={r['value']:g} "
      f"seeds {[x.seed for x in group]}: val {np.mean(accuracies):.4f} "
      f"({time.perf_counter() - start:.1f} s, {r.get('steps')} steps)",
      flush=True,
    )
    save()


def import_workdirs(directory: Path, results: dict) -> None:
  """Adds finished `gdjax train` + `gdjax eval --split test` workdirs <directory>/<config> as runs.

  A workdir of one of the learning-curve configs (e.g. those of
  benchmarks/sklearn_agreement.py, trained on all 54,000 images) becomes the
  run of its size, seed and regularisation value: validation accuracy from the
  last eval record of its metrics.jsonl, test accuracy from eval_test.json.
  """
  for config_name in LABELS:
    workdir = directory / config_name
    if not (workdir / "eval_test.json").exists():
      continue
    config = json.loads((workdir / "config.json").read_text())
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in records if r.get("split") == "eval" and "classification/accuracy" in r]
    regularisation = regularisation_field(config)
    value = plan.get_field(config, regularisation)
    size, seed = int(config["dataset"]["subset_size"]), int(config["seed"])
    same = [
      r
      for r in results.values()
      if (r["config"], r["size"], r["seed"], r["value"]) == (config_name, size, seed, float(value))
      and "source" not in r
    ]
    if same:  # Fitted here already.
      continue
    results[f"{config_name}__{regularisation}={value}__n{size}__seed{seed}__gdjax_train"] = {
      "config": config_name,
      "task": config["task"],
      "size": size,
      "seed": seed,
      "regularisation": regularisation,
      "value": float(value),
      "validation_accuracy": evals[-1]["classification/accuracy"],
      "test_accuracy": json.loads((workdir / "eval_test.json").read_text())["classification/accuracy"],
      "steps": int(config["total_steps"]),
      "source": str(workdir),
    }


def summarise(results: dict) -> dict:
  """Per config and size: the value chosen on validation, and its test error's mean and sd over seeds."""
  rows = list(results.values())
  summary = {}
  for config in sorted({r["config"] for r in rows}):
    for size in sorted({r["size"] for r in rows if r["config"] == config}):
      by_value = {}  # value -> {seed: run}: runs of one seed and value are the same fit (Bernoulli's var_smoothing).
      for r in rows:
        if r["config"] == config and r["size"] == size:
          by_value.setdefault(r["value"], {}).setdefault(r["seed"], r)
      by_value = {value: list(runs.values()) for value, runs in by_value.items()}
      best = max(by_value, key=lambda v: (np.mean([r["validation_accuracy"] for r in by_value[v]]), -v))
      chosen = by_value[best]
      errors = 100 * (1 - np.array([r["test_accuracy"] for r in chosen]))
      summary.setdefault(config, {})[size] = {
        "chosen": best,
        "regularisation": chosen[0]["regularisation"],
        "validation_accuracy": float(np.mean([r["validation_accuracy"] for r in chosen])),
        "test_error_mean": float(errors.mean()),
        "test_error_sd": float(errors.std(ddof=1)) if len(errors) > 1 else 0.0,
        "seeds": len(chosen),
        "values_compared": len(by_value),
        "tolerance": chosen[0].get("tolerance"),
        "max_steps": max(r.get("steps", 0) for r in chosen),
      }
  return summary


def crossover(generative: dict, discriminative: dict) -> str:
  """Where the mean test-error curves cross, in words, with the gap and whether it exceeds one sd."""
  sizes = sorted(set(generative) & set(discriminative))

  def gap(n) -> str:
    g, d = generative[n], discriminative[n]
    difference = g["test_error_mean"] - d["test_error_mean"]
    within = abs(difference) <= max(g["test_error_sd"], d["test_error_sd"])
    return f"n={n}: naive Bayes - logistic regression = {difference:+.2f} points{' (within one sd)' if within else ''}"

  nb_better = [generative[n]["test_error_mean"] < discriminative[n]["test_error_mean"] for n in sizes]
  if all(nb_better) or not any(nb_better):
    leader = "naive Bayes" if nb_better[0] else "logistic regression"
    return (
      f"no crossover: {leader} has the lower mean test error at every size from {sizes[0]} to {sizes[-1]} "
      f"({gap(sizes[0])}; {gap(sizes[-1])})."
    )
  parts = []
  for i in range(1, len(sizes)):
    if nb_better[i] != nb_better[i - 1]:
      leader = "naive Bayes" if nb_better[i] else "logistic regression"
      parts.append(
        f"between {sizes[i - 1]} and {sizes[i]} examples {leader} takes the lead ({gap(sizes[i - 1])}; {gap(sizes[i])})"
      )
  first = "naive Bayes" if nb_better[0] else "logistic regression"
  return f"{first} has the lower mean at {sizes[0]} examples; " + "; ".join(parts) + f"; {gap(sizes[-1])}."


def write_report(summary: dict, out: Path, machine: str) -> str:
  lines = [
    f"Test error (%), mean ± sd over seeds; regularisation chosen on validation (train[54000:]). {machine}.",
    "",
  ]
  for generative, discriminative in PAIRS:
    if generative not in summary or discriminative not in summary:
      continue
    g, d = summary[generative], summary[discriminative]
    lines += [
      f"**{LABELS[generative]} vs {LABELS[discriminative]}**",
      "",
      "| n | naive Bayes | chosen (of) | logistic regression | chosen (of) | seeds | L-BFGS steps (max) |",
      "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sorted(set(g) & set(d)):
      lines.append(
        f"| {n} | {g[n]['test_error_mean']:.2f} ± {g[n]['test_error_sd']:.2f} | "
        f"{SHORT[g[n]['regularisation']]}={g[n]['chosen']:g} ({g[n]['values_compared']}) | "
        f"{d[n]['test_error_mean']:.2f} ± {d[n]['test_error_sd']:.2f} | "
        f"{SHORT[d[n]['regularisation']]}={d[n]['chosen']:g} ({d[n]['values_compared']}) | "
        f"{min(g[n]['seeds'], d[n]['seeds'])} | {d[n]['max_steps']} |"
      )
    lines += ["", f"Crossover: {crossover(g, d)}", ""]
  text = "\n".join(lines)
  (out / "learning_curves.md").write_text(text + "\n")
  return text


def plot(summary: dict, out: Path) -> Path:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(PAIRS), figsize=(6 * len(PAIRS), 4.5), sharey=True)
  for ax, pair in zip(np.atleast_1d(axes), PAIRS):
    for config, style in zip(pair, ("-o", "-s")):
      if config not in summary:
        continue
      sizes = sorted(summary[config])
      mean = np.array([summary[config][n]["test_error_mean"] for n in sizes])
      sd = np.array([summary[config][n]["test_error_sd"] for n in sizes])
      ax.plot(sizes, mean, style, label=LABELS[config], markersize=4)
      ax.fill_between(sizes, mean - sd, mean + sd, alpha=0.25)
    ax.set_xscale("log")
    ax.set_xlabel("training examples (class-balanced subset of train[:54000])")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
  np.atleast_1d(axes)[0].set_ylabel("test error (%), mean +- sd over seeds")
  fig.suptitle("Fashion-MNIST: generative (naive Bayes) vs discriminative (logistic regression)")
  fig.tight_layout()
  path = out / "learning_curves.png"
  fig.savefig(path, dpi=120)
  return path


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="workdirs/learning_curves")
  parser.add_argument("--seeds", default="", help="e.g. 0,1 (default: the sweep files' seeds)")
  parser.add_argument("--sizes", default="", help="only these sizes, e.g. 10,117 (default: all)")
  parser.add_argument(
    "--configs", default="", help="only these configs, e.g. logistic_regression_binarized_fashion_mnist"
  )
  parser.add_argument(
    "--values", default="", help="only these regularisation values (C or var_smoothing), e.g. 0.1 (default: the grid)"
  )
  parser.add_argument(
    "--import_workdirs",
    default="",
    help="a directory of finished workdirs <config>/ to add as runs (see import_workdirs)",
  )
  parser.add_argument("--aggregate_only", action="store_true", help="only the table and plot of <out>/runs.json")
  parser.add_argument("--tolerance", type=float, default=1e-5, help="L-BFGS stops at this relative change in 10 steps")
  args = parser.parse_args(argv)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  seeds = [int(s) for s in args.seeds.split(",") if s] or None
  sizes = {int(s) for s in args.sizes.split(",") if s}
  runs = []
  for sweep_path in SWEEPS:
    runs += plan.plan_runs(spec.load_sweep(sweep_path, seeds=seeds), out / "planned")
  configs = {r.run_id: run_config(r) for r in runs}
  if sizes:
    runs = [r for r in runs if int(configs[r.run_id].dataset.subset_size) in sizes]
  names = {name for name in args.configs.split(",") if name}
  if names:
    runs = [r for r in runs if r.config_name in names]
  values = {float(v) for v in args.values.split(",") if v}
  if values:
    runs = [
      r for r in runs if float(plan.get_field(configs[r.run_id], regularisation_field(configs[r.run_id]))) in values
    ]
  split_size = data.num_examples(
    data.get_builder(configs[runs[0].run_id].dataset), configs[runs[0].run_id].dataset.train_split
  )
  # At the whole split every seed draws the same subset: seed 0's fit stands for all.
  whole = [r for r in runs if int(configs[r.run_id].dataset.subset_size) == split_size]
  runs = [r for r in runs if r not in whole or r.seed == min(x.seed for x in whole)]
  results_path = out / "runs.json"
  results = json.loads(results_path.read_text())["runs"] if results_path.exists() else {}
  machine = common.machine_description()

  def save():
    results_path.write_text(json.dumps({"machine": machine, "runs": results}, indent=1) + "\n")

  start = time.perf_counter()
  if args.import_workdirs:
    import_workdirs(Path(args.import_workdirs), results)
    save()
  if not args.aggregate_only:
    run_all(runs, configs, Data(configs[runs[0].run_id]), results, tolerance=args.tolerance, save=save)
  summary = summarise(results)
  seconds = round(time.perf_counter() - start, 1)
  (out / "learning_curves.json").write_text(
    json.dumps({"machine": machine, "seconds": seconds, "summary": summary}, indent=1, default=str) + "\n"
  )
  print(write_report(summary, out, machine))
  print(f"Wrote {out / 'learning_curves.md'}, {plot(summary, out)} and {results_path} in {seconds} s.")


if __name__ == "__main__":
  main()
