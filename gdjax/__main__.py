from gdjax.cli import entry_point

entry_point()
