"""Discriminator penalties and GAN regularisers, found by name in one registry.

`config.regularizers` names the active ones, comma-separated (e.g.
"wgan_gp", "r1" or "diffaugment,lecam"); `config.regularizer_options.<name>` holds each one's
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
pytree under its name, so it is checkpointed and resumes exactly. Under
`pmap` each device runs the update on its shard of the batch, but the state
must come out the same on every device: a regulariser that updates it from
the batch takes batch statistics with `view.batch_mean`, which averages over
the devices too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections

from gdjax import augmentations, diff_augment, gan_losses
from gdjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DiscriminatorView:
  """What a regulariser sees of one D (or G) update.

  `score(images, labels)` is D in inference mode under the parameters being
  differentiated. `real` and `fake` are the images D scored (after any
  augmentation); in the generator update `real` and `real_scores` are None.
  `real_scores` and `fake_scores` come from D in training mode (batch norm
  on the batch's statistics), as the adversarial loss saw them.
  `axis_name` is the `pmap` axis when each device holds a shard of the batch.
  """

  score: Callable[[jax.Array, jax.Array], jax.Array]
  real: jax.Array | None
  fake: jax.Array
  real_labels: jax.Array | None
  fake_labels: jax.Array
  real_scores: jax.Array | None
  fake_scores: jax.Array
  axis_name: str | None = None

  def batch_mean(self, values: jax.Array) -> jax.Array:
    """The mean of `values` over the whole batch: under `pmap` also over every device's shard (equal shards)."""
    mean = jnp.mean(values)
    return mean if self.axis_name is None else jax.lax.pmean(mean, self.axis_name)


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


@dataclasses.dataclass(frozen=True)
class DiffAugment(Regularizer):
  """The same random differentiable augmentation of every image D sees, real and fake, in the D and the G update.

  `policy` names the ops of `gdjax/diff_augment.py` ("color", "translation",
  "cutout"), applied in its order; the default is all three, which the
  paper's code recommends for small data sets. `translation_ratio` is the largest shift and `cutout_ratio` the cut
  square's side, as fractions of the image size. No loss term, no state.

  References:
    Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient
    GAN Training", NeurIPS 2020.
  """

  policy: str = "color,translation,cutout"
  translation_ratio: float = 0.125
  cutout_ratio: float = 0.5

  def __post_init__(self):
    diff_augment.parse_policy(self.policy)  # An unknown op is refused when the task is built.

  def augment(self, rng, images):
    return diff_augment.augment(
      rng, images, self.policy, translation_ratio=self.translation_ratio, cutout_ratio=self.cutout_ratio
    )


@dataclasses.dataclass(frozen=True)
class BalancedConsistency(Regularizer):
  """bCR: `real_weight * E[(D(x) - D(T(x)))^2] + fake_weight * E[(D(G(z)) - D(T(G(z))))^2]`, a D-only term.

  T mirrors an image left-right with probability 1/2 (`flip`) and shifts it
  by whole pixels, up to `int(max_shift_fraction * height)` in each
  direction, filling with 0 (4 pixels of CIFAR-10's 32, 3 of 28): the
  flip-and-translate of the paper's CIFAR-10 experiments, sized and padded as
  StudioGAN does. x and G(z) are the images of D's update (after any
  DiffAugment); each gets its own draw of T. Defaults: lambda_real =
  lambda_fake = 10, the paper's.

  All four scores, D(x), D(T(x)), D(G(z)), D(T(G(z))), come from one extra
  pass of D in inference mode (`view.score`), not from the training-mode
  scores of the adversarial loss: the paper compares D(x) and D(T(x)) in the
  same mode, and here both sides of each difference are. For a D without
  batch norm the two modes give the same function (spectral norm's power
  iteration aside, which only the training passes advance); for a D with
  batch norm this term regularises D with its running statistics, so each
  score depends on its own image only, where the paper's PyTorch code
  normalises T(x) by the statistics of the batch of T(x). Gradients flow
  through both sides of each difference, as in the paper.

  References:
    Zhao, Singh, Lee, Zhang, Odena & Zhang, "Improved Consistency
    Regularization for GANs", AAAI 2021.
  """

  real_weight: float = 10.0
  fake_weight: float = 10.0
  flip: bool = True
  max_shift_fraction: float = 0.125

  def transform(self, rng: jax.Array, images: jax.Array) -> jax.Array:
    """T: a random left-right flip (if `flip`), then a random translation filled with 0."""
    flip_rng, shift_rng = jax.random.split(rng)
    if self.flip:
      images = augmentations.random_flip_left_right(flip_rng, images)
    max_shift = int(self.max_shift_fraction * images.shape[1])
    return augmentations.random_translate(shift_rng, images, max_shift, fill=0.0)

  def discriminator_loss(self, view, state, rng):
    real_rng, fake_rng = jax.random.split(rng)
    parts = (view.real, self.transform(real_rng, view.real), view.fake, self.transform(fake_rng, view.fake))
    labels = (view.real_labels, view.real_labels, view.fake_labels, view.fake_labels)
    sizes = [len(part) for part in parts]
    scores = view.score(jnp.concatenate(parts), jnp.concatenate(labels))  # Inference mode: examples independent.
    real, real_transformed, fake, fake_transformed = jnp.split(scores, [sum(sizes[:i]) for i in (1, 2, 3)])
    real_term = jnp.mean(jnp.square(real - real_transformed))
    fake_term = jnp.mean(jnp.square(fake - fake_transformed))
    total = self.real_weight * real_term + self.fake_weight * fake_term
    return total, state, {"bcr_real": real_term, "bcr_fake": fake_term}


@dataclasses.dataclass(frozen=True)
class LeCam(Regularizer):
  """LeCam: `weight * (E[relu(D(x) - alpha_F)^2] + E[relu(alpha_R - D(G(z)))^2])`, a D-only term.

  alpha_R and alpha_F are moving averages of D's mean score on real and on
  fake images over D's updates. The form is the authors' code's
  (google/lecam-gan, BigGAN's `lecam_reg` and StyleGAN2's `lecamreg`): it
  penalises only real scores above the fake anchor and fake scores below
  the real anchor. With `one_sided=False` it is the paper's Eq. (3) instead,
  `E[(D(x) - alpha_F)^2] + E[(D(G(z)) - alpha_R)^2]`.

  The anchors are updated first, with this update's mean scores, and then
  used, as in both versions of the authors' code; the means carry no
  gradient. They are exponential moving averages with `decay`, debiased as
  the StyleGAN2 code's (TensorFlow's `zero_debias`):
  `alpha_t = b_t / (1 - decay^t)`, `b_t = decay * b_{t-1} + (1 - decay) * m_t`,
  `b_0 = 0`, so the first update's anchor is its own mean and no start value
  is assumed. (The BigGAN code instead starts them at 1000, sets them to the
  batch mean and leaves the term off for its first 1000 iterations.) The
  scores are the training-mode ones of the adversarial loss, on the images D
  saw (after any DiffAugment). Under `pmap` the means are over the whole
  batch (`view.batch_mean`), so every device holds the same anchors.
  Defaults: weight 0.3 (the authors' BigGAN CIFAR-10 scripts, `--LC 0.3`) and
  decay 0.99 (the authors' StyleGAN2 code; their BigGAN code uses 0.9).
  The state is `{"real_anchor", "fake_anchor"}` (alpha_R, alpha_F) and
  `updates`, the number of D updates so far.

  References:
    Tseng, Jiang, Liu, Yang & Yang, "Regularizing Generative Adversarial
    Networks under Limited Data", CVPR 2021.
  """

  weight: float = 0.3
  decay: float = 0.99
  one_sided: bool = True

  def __post_init__(self):
    if not 0.0 <= self.decay < 1.0:
      raise ConfigError(f"config.regularizer_options.lecam.decay must be in [0, 1), not {self.decay}.")

  def init_state(self):
    zero = jnp.zeros((), jnp.float32)
    return {"real_anchor": zero, "fake_anchor": zero, "updates": jnp.zeros((), jnp.int32)}

  def update_anchors(self, state: dict, real_mean: jax.Array, fake_mean: jax.Array) -> dict:
    """The debiased moving averages after one more D update whose mean scores are `real_mean`, `fake_mean`.

    `alpha_t = alpha_{t-1} + (m_t - alpha_{t-1}) * (1 - decay) / (1 - decay^t)`,
    which equals `b_t / (1 - decay^t)` (and is `m_1` at t = 1).
    """
    updates = state["updates"] + 1
    decay = jnp.float32(self.decay)
    step_size = (1.0 - decay) / (1.0 - decay ** updates.astype(jnp.float32))
    real_anchor = state["real_anchor"] + (real_mean - state["real_anchor"]) * step_size
    fake_anchor = state["fake_anchor"] + (fake_mean - state["fake_anchor"]) * step_size
    return {"real_anchor": real_anchor, "fake_anchor": fake_anchor, "updates": updates}

  def penalty(self, real_scores: jax.Array, fake_scores: jax.Array, real_anchor, fake_anchor) -> jax.Array:
    """The unweighted term, per-example means on this update's (or device's) examples."""
    real_excess, fake_shortfall = real_scores - fake_anchor, real_anchor - fake_scores
    if self.one_sided:
      real_excess, fake_shortfall = jax.nn.relu(real_excess), jax.nn.relu(fake_shortfall)
    return jnp.mean(jnp.square(real_excess)) + jnp.mean(jnp.square(fake_shortfall))

  def discriminator_loss(self, view, state, rng):
    del rng
    real, fake = view.real_scores.astype(jnp.float32), view.fake_scores.astype(jnp.float32)
    means = jax.lax.stop_gradient((view.batch_mean(real), view.batch_mean(fake)))
    state = self.update_anchors(state, *means)
    penalty = self.penalty(real, fake, state["real_anchor"], state["fake_anchor"])
    metrics = {"lecam": penalty, "lecam_real_anchor": state["real_anchor"], "lecam_fake_anchor": state["fake_anchor"]}
    return self.weight * penalty, state, metrics


REGULARIZERS: dict[str, type[Regularizer]] = {
  "wgan_gp": WGANGradientPenalty,
  "r1": R1Penalty,
  "diffaugment": DiffAugment,
  "bcr": BalancedConsistency,
  "lecam": LeCam,
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
