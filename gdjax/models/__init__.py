"""Flax Linen models, found by the name a config gives in `config.model.name`.

A new model is a module class plus one line in `MODELS`; its constructor
arguments come from the rest of `config.model`.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gdjax.errors import ConfigError
from gdjax.models.classifiers import (
  CNNClassifier,
  LinearClassifier,
  MLPClassifier,
  count_parameters,
)
from gdjax.models.gans import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gdjax.models.semi_supervised import SemiSupervisedDiscriminator
from gdjax.models.vae import VAE

MODELS: dict[str, type[nn.Module]] = {
  "linear": LinearClassifier,
  "mlp": MLPClassifier,
  "cnn": CNNClassifier,
  "mlp_generator": MLPGenerator,
  "mlp_discriminator": MLPDiscriminator,
  "dcgan_generator": DCGANGenerator,
  "dcgan_discriminator": DCGANDiscriminator,
  "vae": VAE,
  "semi_supervised_discriminator": SemiSupervisedDiscriminator,
}

__all__ = [
  "MODELS",
  "CNNClassifier",
  "DCGANDiscriminator",
  "DCGANGenerator",
  "MLPDiscriminator",
  "MLPGenerator",
  "LinearClassifier",
  "MLPClassifier",
  "SemiSupervisedDiscriminator",
  "VAE",
  "build_model",
  "compute_dtype",
  "count_parameters",
]

# Names accepted by `config.compute_dtype`. float16 is left out on purpose: it
# needs loss scaling, which bfloat16's float32-sized exponent does not.
COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype(config: ml_collections.ConfigDict):
  """The dtype models compute in, from `config.compute_dtype` (default float32).

  Mixed precision: with "bfloat16", activations, matmuls and convolutions run
  in bfloat16, while parameters, optimizer state, batch-norm statistics,
  losses and model outputs stay float32.
  """
  name = config.get("compute_dtype", "float32")
  if name not in COMPUTE_DTYPES:
    raise ConfigError(f"Unknown compute_dtype {name!r}. Set --config.compute_dtype to one of {COMPUTE_DTYPES}.")
  return jnp.dtype(name)


def build_model(model_config: ml_collections.ConfigDict, **overrides) -> nn.Module:
  """Instantiates `MODELS[model_config.name]` with the other fields as arguments."""
  kwargs = dict(model_config.to_dict())
  name = kwargs.pop("name", None)
  if name not in MODELS:
    raise ConfigError(f"Unknown model {name!r}. Set --config.model.name to one of {sorted(MODELS)}.")
  kwargs.update(overrides)
  cls = MODELS[name]
  fields = {f for f in cls.__dataclass_fields__ if f not in ("parent", "name")}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ConfigError(
      f"config.model has field(s) {unknown} that model {name!r} does not take. Its fields are {sorted(fields)}."
    )
  for key, value in kwargs.items():
    if isinstance(value, list):
      kwargs[key] = tuple(value)
  return cls(**kwargs)
