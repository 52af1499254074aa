"""gdjax's default XLA flags: added to $XLA_FLAGS unless the user set them, and accepted by this jaxlib."""

import os
import subprocess
import sys

import pytest

from gdjax import xla_flags

YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
YNN_DEFAULT = f"--{YNN_FLAG}=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"


def test_adds_the_defaults_after_the_users_flags():
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  added = xla_flags.apply_defaults(environ)
  assert added == [YNN_DEFAULT]
  assert environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {YNN_DEFAULT}"


def test_adds_them_when_xla_flags_is_unset():
  environ = {}
  xla_flags.apply_defaults(environ)
  assert environ["XLA_FLAGS"] == YNN_DEFAULT


def test_a_flag_the_user_set_wins():
  user_value = f"--{YNN_FLAG}="
  environ = {"XLA_FLAGS": user_value}
  assert xla_flags.apply_defaults(environ) == []
  assert environ["XLA_FLAGS"] == user_value


def test_opt_out_variable_turns_them_off():
  environ = {"GDJAX_XLA_DEFAULTS": "0"}
  assert xla_flags.apply_defaults(environ) == []
  assert "XLA_FLAGS" not in environ


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
  """Runs `code` in a fresh interpreter with no XLA_FLAGS or GDJAX_XLA_DEFAULTS but those in `env`."""
  clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "GDJAX_XLA_DEFAULTS")}
  return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_the_gdjax_command_applies_them():
  code = (
    "import os, sys\n"
    "from gdjax import cli\n"
    "sys.argv = ['gdjax', 'help']\n"
    "try:\n"
    "  cli.entry_point()\n"
    "except SystemExit:\n"
    "  pass\n"
    "print(os.environ['XLA_FLAGS'])\n"
  )
  done = _run_python(code)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.splitlines()[-1] == YNN_DEFAULT


def test_this_jaxlib_accepts_them():
  """XLA aborts on a flag it does not know, so a jaxlib that dropped one would fail here."""
  code = (
    "import os, sys\n"
    "from gdjax import xla_flags\n"
    "xla_flags.apply_defaults()\n"
    "import jax, jax.numpy as jnp\n"
    "value = float(jax.jit(lambda x: jnp.sum(x * x))(jnp.arange(4.0)))\n"
    "print(os.environ['XLA_FLAGS'], value)\n"
  )
  done = _run_python(code)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split() == [YNN_DEFAULT, "14.0"]


def test_an_unknown_flag_would_be_caught():
  """The check above can fail: XLA rejects a flag it does not know."""
  code = "import jax; jax.devices()"
  done = _run_python(code, XLA_FLAGS="--xla_cpu_no_such_flag_for_gdjax=1")
  assert done.returncode != 0


def test_warns_and_changes_nothing_once_jax_has_started(monkeypatch, caplog):
  import jax

  jax.devices()  # Started by conftest's imports already; make sure.
  monkeypatch.delenv("GDJAX_XLA_DEFAULTS", raising=False)
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
  with caplog.at_level("WARNING"):
    assert xla_flags.apply_defaults() == []
  assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4"
  assert "were not applied" in caplog.text


@pytest.mark.parametrize(
  "text, names",
  [("", set()), ("--a=1 --b", {"a", "b"}), ("--a='x y' --c=", {"a", "c"}), ("junk --d=1", {"d"})],
)
def test_flag_names_are_parsed_from_xla_flags(text, names):
  assert xla_flags._set_flag_names(text) == names
