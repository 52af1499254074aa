"""The floor of gdjax's GAN metrics: real test images scored against real training images.

No generator can do better than real data drawn from the same distribution,
so this row sits beside every GAN table: FID, KID, precision, recall and
classifier score of the 10,000 Fashion-MNIST test images against a real
reference split (the last 6,000 training images by default, the GANs'
validation reference), with the default GAN config's evaluator and its
feature network, and the class coverage of the test images.

Run (from the repository root; about a minute on 2 CPU cores):
  .venv/bin/python -m benchmarks.real_data_floor [--reference_split 'train[54000:]']
"""

from __future__ import annotations

import argparse

import numpy as np  # noqa: I001

from benchmarks import common  # Before JAX starts: applies gdjax's default XLA flags.
from gdjax import data, parallel
from gdjax.evaluators import EvalContext, class_coverage, sample_quality


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="dcgan_fashion_mnist", help="the GAN config whose evaluator options are used")
  parser.add_argument("--reference_split", default="train[54000:]")
  args = parser.parse_args()
  config = common.load_config(args.config)
  builder = data.get_builder(config.dataset)
  context = EvalContext(parallel.make_data_mesh(), builder, None)
  options = {k: v for k, v in config.evals.quality.to_dict().items() if k not in ("type", "every_steps", "use_ema")}
  quality = sample_quality.Evaluator({}, context, **{**options, "split": args.reference_split})
  coverage_options = {
    k: v for k, v in config.evals.coverage.to_dict().items() if k not in ("type", "every_steps", "use_ema")
  }
  coverage = class_coverage.Evaluator({}, context, **coverage_options)
  test = data.load_split(builder, "test", whole=True)
  metrics = {**quality.score_images(test["image"]), **coverage.coverage(test["image"])}
  shares = [metrics[f"class_share_{k}"] for k in range(10)]
  print(
    f"real test ({metrics['num_generated']}) vs real {args.reference_split} ({metrics['num_real']}): "
    f"FID {metrics['fid']:.3f}, KID {metrics['kid']:.4f}, precision {metrics['precision']:.3f}, "
    f"recall {metrics['recall']:.3f}, classifier score {metrics['classifier_score']:.2f}, "
    f"smallest class share {metrics['min_class_share']:.3f} (class shares {np.round(shares, 3).tolist()})"
  )
  print("wrote", common.write_results("real_data_floor", [{"reference_split": args.reference_split, **metrics}]))


if __name__ == "__main__":
  main()
