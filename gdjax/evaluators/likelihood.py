"""The ELBO and the importance-weighted estimate of log p(x) of a latent-variable model, streamed over a split.

For each image x of `split` (or its first `num_examples`), with k =
`num_importance_samples` draws z_i ~ q(z|x) and log weights log w_i = log
p(x|z_i) + log p(z_i) - log q(z_i|x) from the task's `log_weights` function:
- `elbo`: the mean of the log w_i, an unbiased estimate of the ELBO;
- `log_likelihood`: logsumexp_i(log w_i) - log k, the importance-weighted
  estimate of log p(x) (Burda et al. 2016), a lower bound in expectation
  that tightens as k grows; k = 5,000 is the usual protocol;
- `negative_log_likelihood`: minus that, in nats per image.
Reported as means over the images. With `binarize`, each image is
binarised once, x ~ Bernoulli(pixel / 255), from a key derived from `seed`
and the image's index in the split, so the figure is reproducible and the
same in any batch size; so are the noise draws. The k draws of an image are
made in chunks of `chunk_size` so that memory stays bounded whatever k is.
The result records k, the seed, the number of images and the protocol.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gdjax import data, parallel
from gdjax.evaluators.base import EvalContext
from gdjax.evaluators.base import Evaluator as BaseEvaluator


class Evaluator(BaseEvaluator):
  requires = ("log_weights",)

  def __init__(
    self,
    inference,
    context: EvalContext,
    *,
    split: str,
    num_importance_samples: int = 5000,
    chunk_size: int = 500,
    batch_size: int = 100,
    num_examples: int = 0,
    seed: int = 0,
    binarize: bool = True,
  ):
    super().__init__(inference, context)
    if num_importance_samples < 1 or chunk_size < 1:
      raise ValueError("num_importance_samples and chunk_size must be at least 1.")
    self.split, self.k, self.batch_size, self.num_examples = split, num_importance_samples, batch_size, num_examples
    self.chunk_size = min(chunk_size, num_importance_samples)
    if self.k % self.chunk_size:
      raise ValueError(f"num_importance_samples={self.k} must be a multiple of chunk_size={self.chunk_size}.")
    self.seed, self.binarize = seed, binarize
    latent_dim = inference["log_weights"].inputs["noise"].shape[-1]
    log_weights = inference["log_weights"].fn
    noise_root, binarize_root = jax.random.split(jax.random.key(seed))
    chunk = self.chunk_size

    def observe(images, indices):
      if not binarize:
        return images
      keys = jax.vmap(lambda i: jax.random.fold_in(binarize_root, i))(indices)
      draws = jax.vmap(lambda key, image: jax.random.bernoulli(key, image.astype(jnp.float32) / 255.0))(keys, images)
      return (draws * 255).astype(jnp.uint8)

    def chunk_statistics(params, images, indices, chunk_index):
      """Per image: logsumexp and sum of this chunk's log weights."""
      keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(noise_root, i), chunk_index))(indices)
      noise = jax.vmap(lambda key: jax.random.normal(key, (chunk, latent_dim)))(keys)
      values = log_weights(params, {"images": observe(images, indices), "noise": noise})["log_weights"]
      return jax.nn.logsumexp(values, axis=1), jnp.sum(values, axis=1)

    self.chunk_statistics = jax.jit(chunk_statistics, out_shardings=parallel.replicated_sharding(context.mesh))
    data.num_examples(context.builder, split)  # A bad split fails now, not at the first eval.

  def run(self, params, step: int | None = None) -> dict:
    del step
    images = data.load_split(self.context.builder, self.split, whole=True)["image"]
    if self.num_examples:
      images = images[: self.num_examples]
    batch_size = -(-self.batch_size // jax.device_count()) * jax.device_count()
    sharding = parallel.batch_sharding(self.context.mesh)
    local = slice(
      jax.process_index() * batch_size // jax.process_count(),
      (jax.process_index() + 1) * batch_size // jax.process_count(),
    )
    log_likelihoods, elbos = [], []
    for start in range(0, len(images), batch_size):
      chunk_images = images[start : start + batch_size]
      padded = data.pad_batch({"image": chunk_images, "index": np.arange(start, start + len(chunk_images))}, batch_size)
      inputs = {k: jax.make_array_from_process_local_data(sharding, padded[k][local]) for k in ("image", "index")}
      lse, total = None, 0.0
      for chunk_index in range(self.k // self.chunk_size):
        chunk_lse, chunk_sum = jax.device_get(
          self.chunk_statistics(params, inputs["image"], inputs["index"], chunk_index)
        )
        chunk_lse, chunk_sum = np.float64(chunk_lse), np.float64(chunk_sum)
        lse = chunk_lse if lse is None else np.logaddexp(lse, chunk_lse)
        total = total + chunk_sum
      count = len(chunk_images)
      log_likelihoods.append((lse - np.log(self.k))[:count])
      elbos.append((total / self.k)[:count])
    log_likelihood = float(np.mean(np.concatenate(log_likelihoods)))
    return {
      "elbo": float(np.mean(np.concatenate(elbos))),
      "log_likelihood": log_likelihood,
      "negative_log_likelihood": -log_likelihood,
      "num_importance_samples": self.k,
      "num_examples": len(images),
      "seed": self.seed,
      "split": self.split,
      "protocol": (
        "dynamically binarised: each image once, x ~ Bernoulli(pixel/255), fixed seed"
        if self.binarize
        else "8-bit pixels, discretised likelihood"
      ),
    }
