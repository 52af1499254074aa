"""Speed and quality benchmarks of gdjax against PyTorch references; each script prints its figures.

Run from the repository root, as modules:

  python -m benchmarks.suite             train-step speed, MFU and memory against PyTorch, side by side
  python -m benchmarks.dcgan_vs_pytorch  gdjax's DCGAN against its PyTorch twin, scored by one FID

The rest is imported by those two: `common` (configs, machine description,
results files; importing it applies gdjax's default XLA flags), `flops`
(model FLOPs counted from a jaxpr), `torch_dcgan`, `torch_reference` and
`torch_memory` (the PyTorch side, which needs the `bench` extra:
`pip install -e '.[bench]'`). Results go to `benchmarks/results/`, which git
ignores; the figures kept for the record, with the commands that made them,
are in `docs/performance.md` and `docs/measurements/`.

This file imports nothing, so `from benchmarks import flops` (as the tests do)
neither starts JAX with other flags nor needs torch.
"""
