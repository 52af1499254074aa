"""gdjax: train generative and discriminative models with JAX, Flax, Optax and Orbax."""

__version__ = "0.1.0"
