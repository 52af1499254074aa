"""`python -m gdjax.sweep ...`: the same as `gdjax sweep ...`."""

from gdjax.sweep.cli import entry_point

entry_point()
