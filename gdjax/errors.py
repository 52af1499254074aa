"""User-facing errors.

A `GdjaxError` means the input was wrong (a config, a dataset, a checkpoint,
an image array, a flag), not that gdjax is broken. The CLI prints its message
without a traceback and exits with status 2, so every message says what is
wrong *and* how to fix it.
"""


class GdjaxError(Exception):
  """An error caused by the user's input, with a message that says how to fix it."""


class ConfigError(GdjaxError):
  """A config is missing a field, has an unknown field or an invalid value."""


class DatasetError(GdjaxError):
  """A dataset cannot be found locally and cannot be downloaded."""


class CheckpointError(GdjaxError):
  """A workdir holds no checkpoint, or one that does not fit the config."""


class InputArrayError(GdjaxError):
  """An array passed to `predict` has the wrong shape, dtype or values."""
