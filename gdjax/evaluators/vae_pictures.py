"""Pictures of an autoencoder's latent space: reconstructions, interpolations and, for a 2-D latent, a scatter plot.

Written during training to `<workdir>/samples/` (process 0), one set per
evaluation step; `gdjax eval --pictures` writes a set of the split it
evaluates, its name ending in `_<split>`:
- `reconstructions_step_<step>.png`: rows of `split`'s first images, each
  row followed by its reconstruction (the decoder's mean at the encoder's
  mean);
- `interpolations_step_<step>.png`: per row, the decoder's mean along the
  straight line between the encodings of two images of `split`, the two
  images at the ends;
- `latents_step_<step>.png` (only for a 2-D latent space): the encoder's
  means of `num_scatter` images of `split`, coloured by class (matplotlib).
It reports the mean absolute error of the reconstructions in grey levels.
"""

from __future__ import annotations

import jax
import numpy as np

from gdjax import data, samples
from gdjax.evaluators.base import EvalContext, call_in_batches
from gdjax.evaluators.base import Evaluator as BaseEvaluator
from gdjax.evaluators.sample_grid import SAMPLES_DIR


class Evaluator(BaseEvaluator):
  requires = ("encode", "decode")

  def __init__(
    self,
    inference,
    context: EvalContext,
    *,
    split: str,
    num_reconstructions: int = 50,
    num_interpolations: int = 8,
    interpolation_steps: int = 10,
    num_scatter: int = 5000,
    batch_size: int = 500,
  ):
    super().__init__(inference, context)
    self.split, self.batch_size = split, batch_size
    self.num_reconstructions, self.num_interpolations = num_reconstructions, num_interpolations
    self.interpolation_steps, self.num_scatter = interpolation_steps, num_scatter
    self.latent_dim = inference["decode"].inputs["latents"].shape[-1]
    if num_reconstructions % 10:
      raise ValueError(f"num_reconstructions must be a multiple of 10 (the grid's columns); got {num_reconstructions}.")
    data.num_examples(context.builder, split)

  def _call(self, name, params, **batched):
    return call_in_batches(self.inference[name], params, batched, batch_size=self.batch_size, mesh=self.context.mesh)

  def run(self, params, step: int | None = None) -> dict:
    split = data.load_split(self.context.builder, self.split, whole=True)
    count = max(self.num_reconstructions, 2 * self.num_interpolations, self.num_scatter if self.latent_dim == 2 else 0)
    images, labels = split["image"][:count], split["label"][:count]
    means = self._call("encode", params, images=images)["mean"]
    shown = images[: self.num_reconstructions]
    reconstructions = self._call("decode", params, latents=means[: self.num_reconstructions])["images"]
    error = float(np.mean(np.abs(shown.astype(np.float32) - reconstructions.astype(np.float32))))
    if self.context.workdir is None or step is None:
      return {"reconstruction_mean_abs_error": error}
    # Interpolations: both ends' encodings, the line between them.
    weights = np.linspace(0.0, 1.0, self.interpolation_steps, dtype=np.float32)[None, :, None]
    starts = means[: self.num_interpolations][:, None]
    ends = means[self.num_interpolations : 2 * self.num_interpolations][:, None]
    path = ((1.0 - weights) * starts + weights * ends).reshape(-1, self.latent_dim)
    decoded = self._call("decode", params, latents=path)["images"].reshape(
      self.num_interpolations, self.interpolation_steps, *images.shape[1:]
    )
    rows = np.concatenate(
      [
        images[: self.num_interpolations, None],
        decoded,
        images[self.num_interpolations : 2 * self.num_interpolations, None],
      ],
      axis=1,
    )
    if jax.process_index() == 0:
      directory = self.context.workdir / SAMPLES_DIR
      columns = 10
      paired = np.stack(
        [shown.reshape(-1, columns, *shown.shape[1:]), reconstructions.reshape(-1, columns, *shown.shape[1:])], 1
      )
      samples.save_image_grid(
        paired.reshape(-1, *shown.shape[1:]),
        directory / f"reconstructions_step_{step:07d}{self.context.picture_suffix}.png",
        columns=columns,
      )
      samples.save_image_grid(
        rows.reshape(-1, *images.shape[1:]),
        directory / f"interpolations_step_{step:07d}{self.context.picture_suffix}.png",
        columns=self.interpolation_steps + 2,
      )
      if self.latent_dim == 2:
        self._scatter(
          means[: self.num_scatter],
          labels[: self.num_scatter],
          directory / f"latents_step_{step:07d}{self.context.picture_suffix}.png",
          step,
        )
    return {"reconstruction_mean_abs_error": error}

  def _scatter(self, means, labels, path, step):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 6))
    names = self.context.class_names
    for k, name in enumerate(names):
      chosen = labels == k
      axes.scatter(means[chosen, 0], means[chosen, 1], s=3, alpha=0.6, label=name)
    axes.set_xlabel("z[0] (encoder mean)")
    axes.set_ylabel("z[1] (encoder mean)")
    axes.set_title(f"{len(means)} images of {self.split}, step {step}")
    axes.legend(markerscale=4, fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
