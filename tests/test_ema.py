"""EMA of the weights (optimizer.ema_decay): the update, what evaluation uses, checkpoints."""

import functools
import os

import jax
import numpy as np
import pytest

from configs import smoke
from ssd_jax.data.synthetic import random_batch
from ssd_jax import checkpoints
from ssd_jax import convert
from ssd_jax import train
from tests import model_setup


def make_config(ema_decay):
  config = smoke.get_config()
  config.optimizer.ema_decay = ema_decay
  return config


def new_state(config):
  model = model_setup.create_model(config)
  return train.create_train_state(config, model, jax.random.PRNGKey(0))


def signature(config):
  return checkpoints.model_signature(config, model_setup.default_boxes(config))


def leaves(tree):
  return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope='module')
def state_off():
  """A fresh state with EMA off (initializing is the slow part of these tests: done once)."""
  return new_state(make_config(None))


@pytest.fixture(scope='module')
def trained_ema():
  """Three train steps with ema_decay 0.2: the warm-up decay 0.1, 2/11, then the cap 0.2."""
  config = make_config(0.2)
  state = new_state(config)
  step_fn = jax.jit(functools.partial(train.train_step, config=config,
                                      priors=model_setup.default_boxes(config).boxes))
  rng = np.random.default_rng(0)
  params = [leaves(state.params)]
  for _ in range(3):
    batch = random_batch(rng, 4, config.model.input_size, 8, len(config.input.class_names))
    state, _ = step_fn(state, batch)
    params.append(leaves(state.params))
  return config, state, params


@pytest.mark.slow
def test_train_step_ema_matches_numpy(trained_ema):
  _, state, params = trained_ema
  ema = params[0]  # The average starts at the initial params.
  for k in (1, 2, 3):
    d = min(0.2, (1 + (k - 1)) / (10 + (k - 1)))  # k - 1 updates before this one
    ema = [d * e + (1 - d) * p for e, p in zip(ema, params[k])]
  assert int(state.step) == 3
  for got, want in zip(leaves(state.ema_params), ema):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  assert any(not np.allclose(e, p) for e, p in zip(ema, params[3]))  # EMA is not params


def test_decay_warm_up_values():
  np.testing.assert_allclose(train.ema_decay_at(0.999, 0), 0.1)
  np.testing.assert_allclose(train.ema_decay_at(0.999, 8), 0.5)
  np.testing.assert_allclose(train.ema_decay_at(0.9, 10**6), 0.9)


@pytest.mark.slow
def test_variables_are_the_ema_params_when_on(trained_ema, state_off):
  _, state, _ = trained_ema
  for got, want in zip(leaves(state.variables['params']), leaves(state.ema_params)):
    np.testing.assert_array_equal(got, want)
  assert state_off.ema_params == {}
  assert state_off.variables['params'] is state_off.params


@pytest.mark.slow
def test_eval_step_uses_the_ema_params(trained_ema):
  config, state, _ = trained_ema
  priors = model_setup.default_boxes(config).boxes
  image = np.random.default_rng(1).normal(size=(2, 96, 96, 3)).astype(np.float32)
  got = train.eval_step(state.variables, {'image': image}, priors, state.apply_fn, config)
  want = train.eval_step({'params': state.ema_params, 'batch_stats': state.batch_stats},
                         {'image': image}, priors, state.apply_fn, config)
  raw = train.eval_step({'params': state.params, 'batch_stats': state.batch_stats},
                        {'image': image}, priors, state.apply_fn, config)
  np.testing.assert_array_equal(got['scores'], want['scores'])
  assert not np.array_equal(got['scores'], raw['scores'])


def save(tmp_path, config, state, step=3):
  manager = checkpoints.create_manager(str(tmp_path), config)
  checkpoints.save(manager, step, state, signature(config))
  checkpoints.wait_until_finished(manager)
  return manager


@pytest.mark.slow
def test_save_restore_round_trip_with_ema(trained_ema, tmp_path):
  config, state, _ = trained_ema
  save(tmp_path, config, state)
  manager = checkpoints.create_manager(str(tmp_path), config)
  restored, step = checkpoints.restore(manager, state, signature(config))  # (its shapes)
  assert step == 3 and int(restored.step) == 3
  for name in ('params', 'ema_params'):
    for got, want in zip(leaves(getattr(restored, name)), leaves(getattr(state, name))):
      np.testing.assert_array_equal(got, want)
  # init_from (pretrained.load -> load_params) takes the averaged weights.
  loaded = checkpoints.load_params(os.path.join(str(tmp_path), 'checkpoints'))
  for got, want in zip(leaves(loaded), leaves(state.ema_params)):
    np.testing.assert_array_equal(got, want)


@pytest.mark.slow
@pytest.mark.parametrize('saved_decay, resumed_decay', [(0.2, None), (None, 0.2)])
def test_resume_with_ema_switched_is_refused(saved_decay, resumed_decay, trained_ema, state_off,
                                            tmp_path):
  states = {None: state_off, 0.2: trained_ema[1]}
  saved = make_config(saved_decay)
  manager = save(tmp_path, saved, states[saved_decay])
  resumed = make_config(resumed_decay)
  with pytest.raises(ValueError, match=rf'optimizer.ema: checkpoint has {saved_decay is not None}'
                                       rf', config has {resumed_decay is not None}.*init_from'):
    checkpoints.restore(manager, states[resumed_decay], signature(resumed))


@pytest.mark.slow
def test_init_from_starts_the_average_at_the_loaded_params(trained_ema, tmp_path, capsys):
  config, state, _ = trained_ema
  given = jax.tree.map(lambda x: np.full(x.shape, 0.5, np.float32), state.params)
  convert.save_params(str(tmp_path), given, {'source': 'test'})
  config = make_config(0.2)
  config.init_from = str(tmp_path)
  started = train.initialize_from(state, config, train.make_mesh())
  assert 'Initialized' in capsys.readouterr().out
  for name in ('params', 'ema_params'):
    for leaf in leaves(getattr(started, name)):
      np.testing.assert_array_equal(leaf, 0.5)
