"""The regulariser registry: names, options, refusals. (Their gradients: tests/test_gan_step_gradients.py.)"""

import ml_collections
import pytest

from gdjax import gan_regularizers, tasks
from gdjax.errors import ConfigError
from gdjax.tasks import gan


def config_with(regularizers, **options):
  config = gan.default_config()
  config.regularizers = regularizers
  for name, values in options.items():
    config.regularizer_options[name].update(values)
  return config


def test_unknown_name_is_refused_with_the_known_ones():
  with pytest.raises(ConfigError, match=r"Unknown GAN regulariser\(s\) \['wgangp'\].*\['r1', 'wgan_gp'\]"):
    tasks.build_task(config_with("wgangp"))


def test_a_name_given_twice_is_refused():
  with pytest.raises(ConfigError, match="names a regulariser twice"):
    tasks.build_task(config_with("r1, r1"))


def test_options_come_from_the_config_and_defaults_from_the_dataclass():
  task = tasks.build_task(config_with("r1,wgan_gp", r1={"weight": 0.5}))
  assert list(task.regularizers) == ["r1", "wgan_gp"]
  assert task.regularizers["r1"].weight == 0.5 and task.regularizers["wgan_gp"].weight == 10.0
  assert gan_regularizers.default_options().to_dict() == {"r1": {"weight": 5.0}, "wgan_gp": {"weight": 10.0}}


def test_an_unknown_option_is_refused():
  config = gan.default_config()
  config.regularizers = "r1"
  config.regularizer_options = ml_collections.ConfigDict({"r1": {"weight": 1.0, "gamma": 2.0}})
  with pytest.raises(ConfigError, match=r"regularizer_options.r1 has unknown option\(s\) \['gamma'\]"):
    tasks.build_task(config)


def test_no_regulariser_means_an_empty_state_and_no_extra_metrics():
  task = tasks.build_task(gan.default_config())
  assert task.regularizers == {}
