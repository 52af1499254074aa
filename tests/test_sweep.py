"""`gdjax sweep` end to end on the fake Fashion-MNIST, and its aggregation on hand-made run directories.

The end-to-end runs shrink the real configs with test_cli's `small_run_flags`
(passed as --set), so each run trains a few steps through the real
`gdjax train` and `gdjax eval` subprocesses. Aggregated numbers are checked
against NumPy on values read back from the run files by the test itself.
"""

import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import tree_digest
from test_cli import small_run_flags

from gdjax.sweep import aggregate, plan, spec
from gdjax.sweep import cli as sweep_cli
from gdjax.sweep import runs as runs_lib

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("mlp_fashion_mnist", "linear_svm_fashion_mnist")


def write_sweep(directory: Path, name: str = "sweep", **definition) -> Path:
  """A sweep file whose get_sweep() returns `definition`."""
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / f"{name}.py"
  path.write_text(f'"""A test sweep."""\n\n\ndef get_sweep():\n  return {definition!r}\n')
  return path


def set_flags(local_dir, data_dir, total_steps=6) -> list[str]:
  """test_cli's small_run_flags as --set FIELD=VALUE."""
  args = []
  for flag in small_run_flags(local_dir, data_dir, total_steps=total_steps):
    args += ["--set", flag.removeprefix("--config.")]
  return args


def sweep(*args) -> int:
  return sweep_cli.main(["gdjax sweep", *map(str, args)])


def read_jsonl(path: Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines()]


def train_steps(workdir: Path) -> list[int]:
  return [r["step"] for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == "train"]


def numbers_of(evaluation: dict) -> dict:
  """Independently of the code: every number of eval_test.json but step and seconds (bools are not numbers)."""
  return {k: v for k, v in evaluation.items() if k not in ("step", "seconds") and type(v) in (int, float)}


def expected_selection_metric(config: dict) -> str:
  best = config.get("checkpoint", {}).get("best_metric")
  return best or "accuracy"  # Workdirs of before checkpoint.best_metric: the classifier's accuracy.


@pytest.fixture(scope="module")
def two_configs(tmp_path_factory, fake_fashion_mnist_dir, fake_tfds_data_dir):
  """2 configs x 2 seeds. Seed 0 first, one run at a time (it prepares the TFDS data: concurrent
  first preparations race), then seed 1 two at a time, which must reuse the seed-0 runs."""
  root = tmp_path_factory.mktemp("sweep_two_configs")
  sweep_file = write_sweep(root, configs=CONFIGS, seeds=(0, 1))
  args = ["--sweep", sweep_file, "--out", root / "out", *set_flags(fake_fashion_mnist_dir, fake_tfds_data_dir)]
  assert sweep(*args, "--seeds", "0") == 0
  first = {p.name: tree_digest(p / "checkpoints") for p in (root / "out" / "runs").iterdir()}
  assert sweep(*args, "--parallel", "2") == 0
  return {"args": args, "out": root / "out", "seed0_checkpoints": first}


@pytest.mark.slow
class TestEndToEnd:
  def test_runs_write_results_tables_and_plots(self, two_configs):
    out = two_configs["out"]
    run_dirs = sorted(p.name for p in (out / "runs").iterdir())
    assert run_dirs == sorted(f"{c}__seed{s}" for c in CONFIGS for s in (0, 1))
    for name in run_dirs:
      result = json.loads((out / "runs" / name / "result.json").read_text())
      assert result["status"] == "finished" and (out / "runs" / name / "eval_test.json").is_file()
    for name in ("results.md", "results.csv", "runs.csv", "results.json", "sweep.json"):
      assert (out / name).is_file(), name
    text = (out / "results.md").read_text()
    assert "Command: `" in text.splitlines()[2] and "--sweep=" in text.splitlines()[2]
    assert re.search(r"cores", text) and "± " in text and "(2)" in text
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert any(p.startswith("validation_") for p in plots) and any(p.startswith("test_") for p in plots)
    plan_file = json.loads((out / "sweep.json").read_text())
    assert len(plan_file["runs"]) == 4 and all("train_command" in r for r in plan_file["runs"])

  def test_adding_seeds_reused_the_finished_runs(self, two_configs):
    for name, digest in two_configs["seed0_checkpoints"].items():
      assert tree_digest(two_configs["out"] / "runs" / name / "checkpoints") == digest

  def test_aggregates_equal_numpy_over_the_run_files(self, two_configs):
    out = two_configs["out"]
    results = json.loads((out / "results.json").read_text())
    groups = {g["group_id"]: g for g in results["groups"]}
    assert set(groups) == set(CONFIGS)
    for config in CONFIGS:
      values: dict[str, list] = {}
      for seed in (0, 1):
        workdir = out / "runs" / f"{config}__seed{seed}"
        evaluation = json.loads((workdir / "eval_test.json").read_text())
        for name, value in numbers_of(evaluation).items():
          values.setdefault(f"test/{name}", []).append(value)
        metric = expected_selection_metric(json.loads((workdir / "config.json").read_text()))
        at_step = [
          r for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == "eval" and r["step"] == evaluation["step"]
        ]
        values.setdefault(f"validation/{metric}", []).append(at_step[-1][metric])
      summary = groups[config]["metrics"]
      assert set(summary) == set(values)
      for name, v in values.items():
        assert summary[name]["n"] == 2
        assert summary[name]["mean"] == pytest.approx(np.mean(v), rel=1e-12, abs=1e-15)
        assert summary[name]["sd"] == pytest.approx(np.std(v, ddof=1), rel=1e-9, abs=1e-15)
      assert groups[config]["finished"] == 2 and groups[config]["failed"] == 0

  def test_rerun_trains_nothing(self, two_configs, capsys):
    out = two_configs["out"]
    kept = ("metrics.jsonl", "eval_test.json", "config.json", "log.txt")
    before = {
      p.name: [(p / f).read_bytes() for f in kept] + [tree_digest(p / "checkpoints")] for p in (out / "runs").iterdir()
    }
    capsys.readouterr()
    assert sweep(*two_configs["args"], "--parallel", "2") == 0
    assert "4 finished already, 0 to run" in capsys.readouterr().out
    after = {
      p.name: [(p / f).read_bytes() for f in kept] + [tree_digest(p / "checkpoints")] for p in (out / "runs").iterdir()
    }
    assert after == before

  def test_a_run_whose_evaluation_was_lost_is_completed(self, two_configs, capsys):
    out = two_configs["out"]
    workdir = out / "runs" / f"{CONFIGS[1]}__seed1"
    evaluation = json.loads((workdir / "eval_test.json").read_text())
    others = {p.name: (p / "eval_test.json").stat().st_mtime_ns for p in (out / "runs").iterdir() if p != workdir}
    (workdir / "eval_test.json").unlink()
    capsys.readouterr()
    assert sweep(*two_configs["args"]) == 0
    assert "3 finished already, 1 to run" in capsys.readouterr().out
    again = json.loads((workdir / "eval_test.json").read_text())
    assert numbers_of(again) == numbers_of(evaluation)  # Same checkpoint, same numbers.
    for name, mtime in others.items():
      assert (out / "runs" / name / "eval_test.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_short_run_resumes_and_a_failing_run_is_recorded(tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir):
  # A learning rate of 1e30 makes the weights overflow at the first step: gdjax train stops on it.
  # One run at a time: two first-time preparations of the TFDS data race (see the two_configs fixture).
  sweep_file = write_sweep(
    tmp_path, configs=("linear_svm_fashion_mnist",), seeds=(0,), grid={"optimizer.learning_rate": (3e-3, 1e30)}
  )
  out = tmp_path / "out"
  good, bad = (
    out / "runs" / f"linear_svm_fashion_mnist__optimizer.learning_rate={lr}__seed0" for lr in ("0.003", "1e+30")
  )
  args = ["--sweep", sweep_file, "--out", out]
  assert sweep(*args, *set_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, total_steps=3)) == 1
  assert train_steps(good) == [2, 3]
  failed = json.loads((bad / "result.json").read_text())
  assert failed["status"] == "failed" and failed["failed_command"] == "train" and failed["returncode"] != 0
  assert Path(failed["log"]) == bad / "log.txt" and "gdjax train" in failed["log_tail"]

  assert sweep(*args, *set_flags(fake_fashion_mnist_dir, fake_tfds_data_dir, total_steps=6)) == 1
  assert train_steps(good) == [2, 3, 4, 6]  # Resumed at step 4, not restarted.
  assert json.loads((good / "eval_test.json").read_text())["step"] in (3, 6)
  results = json.loads((out / "results.json").read_text())
  counts = {g["group_id"].rsplit("=", 1)[1]: (g["finished"], g["failed"]) for g in results["groups"]}
  assert counts == {"0.003": (1, 0), "1e+30": (0, 1)}
  table = (out / "results.md").read_text()
  assert "Failed runs (1)" in table and str(bad / "log.txt") in table


@pytest.mark.slow
def test_printed_commands_make_runs_that_aggregate_only_reads(
  tmp_path, fake_fashion_mnist_dir, fake_tfds_data_dir, capsys
):
  sweep_file = write_sweep(tmp_path, configs=("linear_svm_fashion_mnist",), seeds=(0,))
  out = tmp_path / "out dir"  # A space, to check the shell quoting.
  args = ["--sweep", sweep_file, "--out", out, *set_flags(fake_fashion_mnist_dir, fake_tfds_data_dir)]
  capsys.readouterr()
  assert sweep(*args, "--print_commands") == 0
  commands = capsys.readouterr().out.strip().splitlines()
  assert len(commands) == 1 and not out.exists()
  assert " && " in commands[0] and str(REPO) in commands[0]
  subprocess.run(["bash", "-c", commands[0]], check=True, capture_output=True, env=dict(os.environ))
  assert sweep(*args, "--aggregate_only") == 0
  results = json.loads((out / "results.json").read_text())
  assert [r["status"] for r in results["runs"]] == ["finished"]
  assert results["groups"][0]["metrics"]  # Read from the workdir the command wrote.


@pytest.mark.parametrize(
  "definition, extra, message",
  [
    (dict(configs=("no_such_config",), seeds=(0,)), [], "no_such_config"),
    (dict(configs=CONFIGS, seeds=(0,), grid={"optimizer.learnin_rate": (1e-3, 3e-3)}), [], "learnin_rate"),
    (dict(configs=CONFIGS, seeds=(0,), overrides={"total_steps": 1.5}), [], "total_steps"),
    (dict(configs=CONFIGS, seeds=(0,), overrides={"total_steps": "many"}), [], "total_steps"),
    (dict(configs=CONFIGS, seeds=(0,), overrides={"progress_bar": "no"}), [], "progress_bar"),
    (dict(configs=CONFIGS, seeds=(0,), overides={"total_steps": 3}), [], "overides"),
    (dict(configs=CONFIGS, seeds=()), [], "seeds"),
    (dict(configs=CONFIGS, seeds=(0,), grid={"optimizer.learning_rate": 1e-3}), [], "optimizer.learning_rate"),
    (dict(configs=CONFIGS, seeds=(0,), select=dict(metric="accuracy", mode="best")), [], "mode"),
    (dict(configs=CONFIGS, seeds=(0,)), ["--set", "model.widht=3"], "widht"),
    (dict(configs=CONFIGS, seeds=(0,)), ["--set", "total_steps=1e3"], "total_steps=1e3"),
    (dict(configs=CONFIGS, seeds=(0,)), ["--set", "seed=3"], "seeds"),
    (dict(configs=CONFIGS, seeds=(0,)), ["--seeds", "0,x"], "--seeds"),
  ],
)
def test_bad_sweeps_are_refused_before_anything_is_written(tmp_path, capsys, definition, extra, message):
  sweep_file = write_sweep(tmp_path, **definition)
  assert sweep("--sweep", sweep_file, "--out", tmp_path / "out", *extra) == 2
  err = capsys.readouterr().err
  assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
  "field, value",
  [
    ("optimizer.learning_rate", 1e-3),
    ("optimizer.learning_rate", 1 / 3),
    ("optimizer.learning_rate", 1e30),
    ("optimizer.learning_rate", 2),  # An int for a float field: ml_collections casts it.
    ("total_steps", 12),
    ("progress_bar", False),
    ("augment.flip", True),
    ("dataset.train_split", "train[:192]"),
    ("dataset.local_dir", "/a dir/with 'quotes'"),
    ("dataset.local_dir", ""),
    ("model.hidden_sizes", (512, 256)),
    ("model.hidden_sizes", (7,)),
  ],
)
def test_values_round_trip_through_config_flags(field, value):
  config_path = REPO / "configs" / "mlp_fashion_mnist.py"
  parsed, texts = plan.check_overrides(config_path, {field: value}, {}, seed=0)
  assert (
    parsed_value(parsed, field) == value
    and type(parsed_value(parsed, field)) is type(value)
    or (isinstance(value, int) and isinstance(parsed_value(parsed, field), float))
  )
  again = plan.parse_flags(config_path, {field: texts[field]}, where="test")  # The text alone, as a command line.
  assert parsed_value(again, field) == value


def parsed_value(config, field):
  value = config
  for key in field.split("."):
    value = value[key]
  return value


def test_run_ids_are_readable_and_filesystem_safe(tmp_path):
  sweep_file = write_sweep(
    tmp_path,
    configs=("mlp_fashion_mnist",),
    seeds=(0, 1),
    grid={"model.hidden_sizes": ((512, 256), (64,)), "dataset.train_split": ("train[:50%]", "train[50%:]" + "x" * 150)},
  )
  runs = plan.plan_runs(spec.load_sweep(sweep_file), tmp_path / "out")
  ids = [r.run_id for r in runs]
  assert len(set(ids)) == len(ids) == 8
  assert all(re.fullmatch(r"[A-Za-z0-9._+=,-]+", i) and len(i) <= plan.MAX_ID_LENGTH + 10 for i in ids)
  assert ids[0] == "mlp_fashion_mnist__model.hidden_sizes=512-256,dataset.train_split=train-50__seed0"
  assert all(r.group_id == r.run_id.rsplit("__", 1)[0] for r in runs)
  assert runs[0].train_command[-1] == "--config.progress_bar=False"
  assert "--config.model.hidden_sizes=(512, 256)" in runs[0].train_command


# --- Aggregation and selection on hand-made run directories: no training.

# lr -> seed -> (validation accuracy, test accuracy, test loss). The best validation setting, 1e-2,
# is not the best test setting, 3e-3.
FAKE = {
  1e-3: {0: (0.80, 0.79, 0.61), 1: (0.82, 0.80, 0.60), 2: (0.81, 0.78, 0.62)},
  3e-3: {0: (0.84, 0.90, 0.41), 1: (0.85, 0.91, 0.40), 2: (0.83, 0.92, 0.39)},
  1e-2: {0: (0.90, 0.85, 0.50), 1: (0.88, 0.84, 0.52)},  # Seed 2 failed.
}


@pytest.fixture
def fake_sweep(tmp_path):
  sweep_file = write_sweep(
    tmp_path, configs=("mlp_fashion_mnist",), seeds=(0, 1, 2), grid={"optimizer.learning_rate": tuple(FAKE)}
  )
  out = tmp_path / "out"
  for run in plan.plan_runs(spec.load_sweep(sweep_file), out):
    workdir = Path(run.workdir)
    workdir.mkdir(parents=True)
    lr = run.setting["optimizer.learning_rate"]
    if run.seed not in FAKE[lr]:
      (workdir / "result.json").write_text(json.dumps({"status": "failed", "error": "diverged", "log": "x"}))
      continue
    validation, accuracy, loss = FAKE[lr][run.seed]
    config = {"task": "classifier", "seed": run.seed, "optimizer": {"learning_rate": lr}}
    config["checkpoint"] = {"best_metric": "classification/accuracy", "best_mode": "max"}
    (workdir / "config.json").write_text(json.dumps(config))
    records = [
      {"step": 3, "split": "eval", "classification/accuracy": validation},
      {"step": run.total_steps, "split": "train", "loss": 0.1},  # Training reached the config's total_steps.
      {"step": run.total_steps, "split": "eval", "classification/accuracy": validation - 0.5},
    ]
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    evaluation = {"step": 3, "split": "test", "checkpoint": "best", "seconds": 1.5}
    evaluation.update({"classification/accuracy": accuracy, "classification/loss": loss, "quality/sha": "ab"})
    (workdir / "eval_test.json").write_text(json.dumps(evaluation))
  return ["--sweep", sweep_file, "--out", out], out


class TestAggregation:
  def test_mean_sd_and_count_equal_numpy(self, fake_sweep):
    args, out = fake_sweep
    assert sweep(*args, "--aggregate_only") == 1  # A failed run makes the status 1.
    groups = json.loads((out / "results.json").read_text())["groups"]
    assert [g["setting"]["optimizer.learning_rate"] for g in groups] == list(FAKE)
    for group, per_seed in zip(groups, FAKE.values()):
      table = np.array(list(per_seed.values()))
      for column, name in enumerate(["validation/classification/accuracy", "test/classification/accuracy"]):
        summary = group["metrics"][name]
        assert summary["n"] == len(per_seed)
        assert summary["mean"] == pytest.approx(np.mean(table[:, column]), rel=1e-12)
        assert summary["sd"] == pytest.approx(np.std(table[:, column], ddof=1), rel=1e-9)
      assert group["metrics"]["test/classification/loss"]["mean"] == pytest.approx(np.mean(table[:, 2]), rel=1e-12)
      assert "test/quality/sha" not in group["metrics"] and "test/seconds" not in group["metrics"]
      assert (group["finished"], group["failed"]) == (len(per_seed), 3 - len(per_seed))

  def test_one_seed_has_no_sd(self):
    assert aggregate.summarize([0.5]) == {"mean": 0.5, "sd": None, "n": 1}
    assert aggregate.summarize([]) == {"mean": None, "sd": None, "n": 0}

  def test_selection_is_on_validation_and_reports_that_settings_test_metrics(self, fake_sweep):
    args, out = fake_sweep
    sweep(*args, "--aggregate_only")
    results = json.loads((out / "results.json").read_text())
    (selected,) = results["selected"]
    assert selected["setting"] == {"optimizer.learning_rate": 1e-2}  # Best validation mean, 0.89.
    best_test = max(FAKE, key=lambda lr: np.mean([v[1] for v in FAKE[lr].values()]))
    assert best_test == 3e-3 != selected["setting"]["optimizer.learning_rate"]
    assert selected["metrics"]["test/classification/accuracy"]["mean"] == pytest.approx(np.mean([0.85, 0.84]))
    table = (out / "results.md").read_text()
    assert "Selected on validation" in table and "optimizer.learning_rate=0.01" in table.split("Selected")[1]
    assert "3 of 3" in table

  def test_min_mode_picks_the_smallest(self):
    groups = [
      {"group_id": g, "config": "c", "config_name": "c", "setting": {"x": g}, "selection": {"metric": "fid", "mode": m}}
      | {"metrics": {"validation/fid": {"mean": v, "sd": None, "n": 1}}}
      for g, v, m in (("a", 3.0, "min"), ("b", 1.0, "min"), ("c", math.nan, "min"), ("d", 2.0, "min"))
    ]
    assert aggregate.select_settings(groups)[0]["group_id"] == "b"

  def test_the_selection_metric_falls_back_to_the_tasks_old_default(self):
    assert runs_lib.selection_metric({"task": "gan"}, None) == ("fid", "min")
    assert runs_lib.selection_metric({"task": "classifier", "checkpoint": {}}, None) == ("accuracy", "max")
    best = {"task": "gan", "checkpoint": {"best_metric": "quality/fid", "best_mode": "min"}}
    assert runs_lib.selection_metric(best, None) == ("quality/fid", "min")
    assert runs_lib.selection_metric(best, {"metric": "quality/recall", "mode": "max"}) == ("quality/recall", "max")

  def test_a_workdir_of_another_setting_is_refused_and_left_alone(self, fake_sweep):
    args, out = fake_sweep
    workdir = next((out / "runs").glob("*learning_rate=0.001__seed0"))
    config = json.loads((workdir / "config.json").read_text())
    config["optimizer"]["learning_rate"] = 0.5
    (workdir / "config.json").write_text(json.dumps(config))
    before = tree_digest(workdir)
    assert sweep(*args, "--aggregate_only") == 1
    (run,) = [r for r in json.loads((out / "results.json").read_text())["runs"] if r["workdir"] == str(workdir)]
    assert run["status"] == "failed" and run["conflict"] and "optimizer.learning_rate=0.5" in run["error"]
    assert tree_digest(workdir) == before

  def test_an_evaluation_older_than_the_training_is_not_final(self, fake_sweep):
    _, out = fake_sweep
    workdir = next((out / "runs").glob("*learning_rate=0.001__seed0"))
    total_steps = runs_lib.trained_steps(workdir)  # The fake's train record is at the config's total_steps.
    assert runs_lib.is_finished(workdir, total_steps) and not runs_lib.is_finished(workdir, total_steps + 1)
    os.utime(workdir / "metrics.jsonl", ns=(0, (workdir / "eval_test.json").stat().st_mtime_ns + 10**9))
    assert not runs_lib.is_finished(workdir, total_steps)


def test_ray_launcher_without_ray_says_how_to_install_it(tmp_path, monkeypatch, capsys):
  import importlib.util

  find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
  sweep_file = write_sweep(tmp_path, configs=("linear_svm_fashion_mnist",), seeds=(0,))
  assert sweep("--sweep", sweep_file, "--out", tmp_path / "out", "--launcher", "ray") == 2
  assert "pip install 'gdjax[ray]'" in capsys.readouterr().err
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sweep_file", sorted((REPO / "configs" / "sweeps").glob("*.py")), ids=lambda p: p.stem)
def test_every_shipped_sweep_plans_its_runs(sweep_file, tmp_path):
  # Each config it names must load and take its grid and overrides: a renamed or deleted config fails here.
  planned = plan.plan_runs(spec.load_sweep(sweep_file), tmp_path / "out")
  assert planned and len({run.run_id for run in planned}) == len(planned)
