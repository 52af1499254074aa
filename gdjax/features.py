"""Feature transforms shared by a generative classifier and its discriminative twin.

Ng & Jordan's comparison is only fair when naive Bayes and logistic
regression see exactly the same features, so both tasks take their inputs
through this one function, inside their jitted steps and `predict`:

- "pixels": uint8 -> [-1, 1] (`samples.to_float`), every classifier's default;
- "binarized": pixel / 255 > 0.5, as 0.0 or 1.0 (Bernoulli naive Bayes' input);
- "intensity": pixel / 255 in [0, 1] (Gaussian naive Bayes' input);
- "counts": the values as they are, as float32 (multinomial naive Bayes' input:
  bag-of-words counts of a text dataset, or pixel values taken as counts).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gdjax import samples

FEATURES = ("pixels", "binarized", "intensity", "counts")


def check_name(name: str) -> str:
  """Returns `name`, or raises `ValueError` naming the known feature transforms."""
  if name not in FEATURES:
    raise ValueError(f"Unknown features {name!r}. Set --config.features to one of {FEATURES}.")
  return name


def transform(name: str, inputs: jax.Array) -> jax.Array:
  """The features `name` of a batch of inputs, in the inputs' shape.

  "pixels" is exactly `samples.to_float`, so classifiers that do not set
  `config.features` compute what they always did. The shape is kept, so a
  convolutional model can take any of them; naive Bayes flattens.

  Args:
    name: one of `FEATURES`.
    inputs: uint8 pixels for "pixels", "binarized" and "intensity"; any
      numbers for "counts".

  Returns:
    float32 features.
  """
  check_name(name)
  if name == "pixels":
    return samples.to_float(inputs)
  if name == "counts":
    return inputs.astype(jnp.float32)
  if inputs.dtype != np.uint8:
    raise ValueError(
      f"features={name!r} take uint8 pixels; got {inputs.dtype}. Use features='counts' for other inputs."
    )
  if name == "binarized":
    # pixel / 255 > 0.5 holds exactly for the integers 128..255: no rounding can move a pixel across.
    return (inputs > 127).astype(jnp.float32)
  return inputs.astype(jnp.float32) / np.float32(255.0)
