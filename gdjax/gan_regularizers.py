"""Discriminator penalties and GAN regularisers, found by name in one registry.

`config.regularizers` names the active ones, comma-separated (e.g.
"wgan_gp" or "r1"); `config.regularizer_options.<name>` holds each one's
options, with the defaults of its dataclass fields. An unknown name is
refused with the list of known ones.

A regulariser can do three things, each optional, so the same interface
fits gradient penalties, consistency regularisation, LeCam's anchors and
differentiable augmentation:
- `augment(rng, images)`: transform every image the discriminator sees, real
  and fake, in both the D and the G update;
- `discriminator_loss(view, state, rng)`: add a term to D's objective, using
  D's scores on the images of the update (`view.real_scores`, ...) or extra
  passes of D (`view.score(images, labels)`, differentiable in D's
  parameters), and return its state updated;
- `generator_loss(view, state, rng)`: add a term to G's objective.
Its state (`init_state()`, a pytree of arrays) lives in the GAN's state
pytree under its name, so it is checkpointed and resumes exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections

from gdjax import gan_losses
from gdjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DiscriminatorView:
  """What a regulariser sees of one D (or G) update.

  `score(images, labels)` is D in inference mode under the parameters being
  differentiated. `real` and `fake` are the images D scored (after any
  augmentation); in the generator update `real` and `real_scores` are None.
  """

  score: Callable[[jax.Array, jax.Array], jax.Array]
  real: jax.Array | None
  fake: jax.Array
  real_labels: jax.Array | None
  fake_labels: jax.Array
  real_scores: jax.Array | None
  fake_scores: jax.Array


@dataclasses.dataclass(frozen=True)
class Regularizer:
  """Base: no augmentation, no state, no loss terms. Subclasses override what they use."""

  # True: the term differentiates D's score of each image on its own, so D
  # must not mix examples (no batch norm in D).
  needs_independent_examples: ClassVar[bool] = False

  def init_state(self) -> Any:
    return {}

  def augment(self, rng: jax.Array, images: jax.Array) -> jax.Array:
    del rng
    return images

  def discriminator_loss(self, view: DiscriminatorView, state: Any, rng: jax.Array) -> tuple[jax.Array, Any, dict]:
    del view, rng
    return jnp.zeros(()), state, {}

  def generator_loss(self, view: DiscriminatorView, state: Any, rng: jax.Array) -> tuple[jax.Array, dict]:
    del view, state, rng
    return jnp.zeros(()), {}


@dataclasses.dataclass(frozen=True)
class WGANGradientPenalty(Regularizer):
  """`weight * E[(||grad D(x_hat)|| - 1)^2]` at random points between real and fake images.

  References:
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
  """

  weight: float = 10.0
  needs_independent_examples: ClassVar[bool] = True

  def discriminator_loss(self, view, state, rng):
    # A conditional D scores the interpolates with the real images' labels.
    penalty = jnp.mean(
      gan_losses.wgan_gradient_penalty(lambda x: view.score(x, view.real_labels), view.real, view.fake, rng)
    )
    return self.weight * penalty, state, {"wgan_gp": penalty}


@dataclasses.dataclass(frozen=True)
class R1Penalty(Regularizer):
  """`weight * E[||grad D(x)||^2]` at real images; `weight` is gamma / 2 in the paper's notation.

  References:
    Mescheder, Geiger & Nowozin, "Which Training Methods for GANs do actually
    Converge?", ICML 2018.
  """

  weight: float = 5.0
  needs_independent_examples: ClassVar[bool] = True

  def discriminator_loss(self, view, state, rng):
    del rng
    penalty = jnp.mean(gan_losses.r1_penalty(lambda x: view.score(x, view.real_labels), view.real))
    return self.weight * penalty, state, {"r1": penalty}


REGULARIZERS: dict[str, type[Regularizer]] = {
  "wgan_gp": WGANGradientPenalty,
  "r1": R1Penalty,
}


def default_options() -> ml_collections.ConfigDict:
  """`config.regularizer_options`: every registered regulariser's options, at their defaults."""
  return ml_collections.ConfigDict(
    {
      name: {field.name: field.default for field in dataclasses.fields(cls) if field.init}
      for name, cls in REGULARIZERS.items()
    }
  )


def parse_names(names: str) -> list[str]:
  """`"a, b"` -> `["a", "b"]`; refuses unknown and repeated names."""
  parsed = [name.strip() for name in (names or "").split(",") if name.strip()]
  unknown = [name for name in parsed if name not in REGULARIZERS]
  if unknown:
    raise ConfigError(
      f"Unknown GAN regulariser(s) {unknown}. Set --config.regularizers to a comma-separated list "
      f"of {sorted(REGULARIZERS)}, or to '' for none."
    )
  if len(set(parsed)) != len(parsed):
    raise ConfigError(f"--config.regularizers names a regulariser twice: {names!r}.")
  return parsed


def build_regularizers(config: ml_collections.ConfigDict) -> dict[str, Regularizer]:
  """The active regularisers, in the order `config.regularizers` names them, with their options."""
  options = config.get("regularizer_options") or ml_collections.ConfigDict()
  built = {}
  for name in parse_names(config.get("regularizers", "")):
    cls = REGULARIZERS[name]
    given = dict(options[name].to_dict()) if name in options else {}
    accepted = {field.name for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(given) - accepted)
    if unknown:
      raise ConfigError(
        f"config.regularizer_options.{name} has unknown option(s) {unknown}; {name} takes {sorted(accepted)}."
      )
    built[name] = cls(**given)
  return built
