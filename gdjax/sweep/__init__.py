"""`gdjax sweep`: benchmark comparisons over configs, hyperparameter settings and seeds.

One module per concern:
  spec.py          the sweep definition file (configs/sweeps/*.py): loaded and its shape checked
  plan.py          the runs: ids, workdirs, commands; every override checked against its config
  runs.py          what a run's workdir says: finished or not, test and validation metrics
  launchers.py     one run's two commands; local subprocesses in parallel; shell commands for batch systems
  ray_launcher.py  runs as Ray tasks, on a local Ray instance kept on loopback or on a cluster
  aggregate.py     statistics over seeds and the setting chosen on validation (pure functions)
  report.py        results.md, results.csv, runs.csv, results.json
  plots.py         validation curves and test bars (PNG)
  cli.py           the flags and the command
"""
