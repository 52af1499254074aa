"""The package's shape: no import cycles, modules of a readable size, tasks known only through their interface."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from gdjax import evaluators, tasks
from gdjax.tasks import base

PACKAGE = Path(__file__).resolve().parents[1] / "gdjax"
MAX_LINES = 500


def module_name(path: Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def gdjax_modules() -> dict[str, Path]:
  return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(path: Path, known: set[str]) -> set[str]:
  """Every gdjax module `path` imports, at module level or inside functions."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
      continue
    found |= {name for name in names if name in known}
  return found


def test_no_import_cycle_inside_gdjax():
  modules = gdjax_modules()
  graph = {name: imported_modules(path, set(modules)) - {name} for name, path in modules.items()}
  # A package imports its own submodules by design (its __init__ re-exports them); only cycles through
  # other modules count: drop package -> own-submodule edges.
  for name, edges in graph.items():
    graph[name] = {other for other in edges if not other.startswith(name + ".")}
  state, stack = {}, []

  def visit(name):
    state[name] = "open"
    stack.append(name)
    for other in sorted(graph[name]):
      if state.get(other) == "open":
        cycle = stack[stack.index(other) :] + [other]
        pytest.fail("import cycle: " + " -> ".join(cycle))
      if other not in state:
        visit(other)
    stack.pop()
    state[name] = "done"

  for name in sorted(graph):
    if name not in state:
      visit(name)


def test_the_data_layer_reads_data_and_knows_no_task():
  """`gdjax.data` sits below the tasks: it imports only its own modules and the error types.

  Batches mixed with a trained generator's samples, which need a task and a
  restored state, are `gdjax.generated_data`'s, one layer up.
  """
  modules = gdjax_modules()
  allowed = {"gdjax", "gdjax.errors"}
  offenders = {}
  for name, path in modules.items():
    if name == "gdjax.data" or name.startswith("gdjax.data."):
      above = {m for m in imported_modules(path, set(modules)) if not m.startswith("gdjax.data") and m not in allowed}
      if above:
        offenders[name] = sorted(above)
  assert offenders == {}


def test_no_module_is_over_500_lines():
  long = {name: len(path.read_text().splitlines()) for name, path in gdjax_modules().items()}
  assert {name: n for name, n in long.items() if n > MAX_LINES} == {}


def test_nothing_outside_the_task_registry_asks_a_task_its_type():
  dispatch = ("isinstance(task", "hasattr(task", "config.task ==", 'config.task != "', "GANTask", "ClassifierTask")
  offenders = []
  for name, path in gdjax_modules().items():
    if name.startswith("gdjax.tasks"):
      continue
    text = path.read_text()
    offenders += [f"{name}: {pattern}" for pattern in dispatch if pattern in text]
  assert offenders == []


@pytest.mark.parametrize("name", tasks.available_tasks())
def test_every_task_provides_the_interface(name):
  module = importlib.import_module(f"gdjax.tasks.{name}")
  config = module.default_config()
  task = tasks.build_task(config)
  members = [m for m in vars(base.Task) if not m.startswith("_")] + list(base.Task.__annotations__)
  missing = [m for m in members if not hasattr(task, m)]
  assert missing == []
  assert task.best_mode in ("max", "min") and task.best_metric.split("/")[0] in config.evals
  for function in task.inference_functions.values():
    assert isinstance(function, base.InferenceFunction)
    assert set(inspect.signature(function.fn).parameters) == {"params", "inputs"}
  # Every evaluation its default config lists needs only inference functions the task offers.
  for entry in config.evals.values():
    needed = importlib.import_module(f"gdjax.evaluators.{entry.type}").Evaluator.requires
    assert set(needed) <= set(task.inference_functions)


def test_every_evaluator_module_exposes_an_evaluator():
  for name in evaluators.available_evaluators():
    cls = importlib.import_module(f"gdjax.evaluators.{name}").Evaluator
    assert issubclass(cls, evaluators.Evaluator) and cls.requires, name
