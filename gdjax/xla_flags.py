"""XLA flags that gdjax sets by default, before JAX starts its backends.

XLA reads `$XLA_FLAGS` once, when JAX starts its first backend (the first
`jax.devices()`, `jax.jit` call or array), not when `jax` is imported. So
`apply_defaults()` must run before any of that: the `gdjax` command calls it
first thing, and the benchmark scripts call it at the top. In your own script,
call it before you touch JAX:

  from gdjax import xla_flags
  xla_flags.apply_defaults()

A flag you already set in `$XLA_FLAGS` wins over gdjax's default for it, and
`GDJAX_XLA_DEFAULTS=0` turns all of gdjax's defaults off.

The defaults, and why (measured by a script that timed whole train steps with
and without them, each in fresh processes; its last results and how to rerun
it are in docs/measurements/xla_cpu_flags.md):

- `--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,
  LIBRARY_FUSION_TYPE_REDUCE` (one word): XLA:CPU in jaxlib 0.10 hands
  matrix products, reductions and convolutions to YNNPACK. This keeps the
  first two there and gives convolutions back to XLA's own (Eigen) kernels,
  which are faster for the CNN classifier's 3x3 stride-1 convolutions. On a
  2-core x86 CPU it made the CNN's train step 1.2-1.35x faster at batch 64,
  128 and 256 and left the GAN steps within noise. Turning YNNPACK off
  altogether helped the CNN at batch 64 only and slowed the MLP GAN by a
  fifth. The flag only affects code compiled for the CPU.
"""

from __future__ import annotations

import logging
import os
import shlex

DEFAULTS: dict[str, str] = {
  "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}

OPT_OUT_VARIABLE = "GDJAX_XLA_DEFAULTS"


def _set_flag_names(xla_flags: str) -> set[str]:
  names = set()
  for token in shlex.split(xla_flags):
    if token.startswith("--"):
      names.add(token[2:].split("=", 1)[0])
  return names


def _backends_started() -> bool:
  try:
    from jax._src import xla_bridge
  except ImportError:  # jax not installed or moved: nothing can have started.
    return False
  started = getattr(xla_bridge, "backends_are_initialized", None)
  return bool(started and started())


def apply_defaults(environ: dict | None = None) -> list[str]:
  """Adds gdjax's default XLA flags to `$XLA_FLAGS`; returns those it added.

  Leaves out any flag `$XLA_FLAGS` already names, and all of them when
  `$GDJAX_XLA_DEFAULTS` is "0". Logs a warning, and changes nothing, when JAX's
  backends have already started, since XLA would no longer read the flags.
  """
  environ = os.environ if environ is None else environ
  if environ.get(OPT_OUT_VARIABLE, "1") == "0":
    return []
  current = environ.get("XLA_FLAGS", "")
  already = _set_flag_names(current)
  added = [f"--{name}={value}" for name, value in DEFAULTS.items() if name not in already]
  if not added:
    return []
  if environ is os.environ and _backends_started():
    logging.getLogger(__name__).warning(
      "gdjax's XLA flags %s were not applied: JAX's backends had already started. "
      "Call gdjax.xla_flags.apply_defaults() before the first use of JAX.",
      " ".join(added),
    )
    return []
  environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
  return added
