"""optimizer.schedule: warmup, then the paper's steps, cosine or linear decay, by hand."""

import math

import numpy as np
import pytest

from configs import default
from ssd_jax import errors
from ssd_jax import train


def make_config(schedule, *, warmup=10, steps=110):
  config = default.get_config()
  config.optimizer.learning_rate = 0.1
  config.optimizer.warmup_steps = warmup
  config.optimizer.schedule = schedule
  config.optimizer.boundaries = (40, 80)
  config.num_train_steps = steps
  return config


def rates(config, steps):
  schedule = train.learning_rate_schedule(config)
  return np.array([float(schedule(s)) for s in steps])


def test_warmup_is_linear_from_a_hundredth():
  for name in ('piecewise', 'cosine', 'linear'):
    np.testing.assert_allclose(rates(make_config(name), [0, 5, 10]),
                               [0.001, 0.001 + 0.099 * 5 / 10, 0.1], rtol=1e-5)


def test_piecewise_steps_at_the_boundary_as_caffe_multistep():
  # Caffe's "multistep": the rate is base * 0.1^k from iteration stepvalue_k on (iter >= it).
  got = rates(make_config('piecewise'), [39, 40, 41, 79, 80, 200])
  np.testing.assert_allclose(got, [0.1, 0.01, 0.01, 0.01, 0.001, 0.001], rtol=1e-5)


def test_piecewise_without_warmup():
  got = rates(make_config('piecewise', warmup=0), [0, 39, 40, 80])
  np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.001], rtol=1e-5)


@pytest.mark.parametrize('name, shape', [
    ('cosine', lambda t: 0.5 * (1 + math.cos(math.pi * t))),
    ('linear', lambda t: 1 - t),
])
def test_decays_reach_zero_at_the_last_step(name, shape):
  steps = [10, 35, 60, 85, 110, 150]
  want = [0.1 * shape(min((s - 10) / 100, 1.0)) for s in steps]
  np.testing.assert_allclose(rates(make_config(name), steps), want, rtol=1e-5, atol=1e-9)


def test_an_unknown_schedule_is_named():
  with pytest.raises(errors.UserError, match="optimizer.schedule=.step."):
    train.learning_rate_schedule(make_config('step'))
