"""Checkpoint retention across restarts (no training: a tiny state saved by the real manager)."""

import os

import numpy as np
import pytest

from configs import smoke
from ssd_jax import checkpoints
from ssd_jax import errors
from tests import model_setup


def signature(config):
  return checkpoints.model_signature(config, model_setup.default_boxes(config))


def test_the_best_step_survives_any_number_of_restarts(tmp_path):
  config = smoke.get_config()
  config.keep_checkpoints = 2
  state = {'w': np.zeros(3, np.float32)}
  runs = [[(1, 0.9), (2, 0.1)], [(3, None), (4, 0.2)], [(5, 0.3)], [(6, None)]]
  for run in runs:  # each run is a fresh manager that knows earlier mAPs only from disk
    manager = checkpoints.create_manager(str(tmp_path), config)
    for step, mAP in run:
      checkpoints.save(manager, step, state, signature(config),
                       metrics=None if mAP is None else {'mAP': mAP})
    checkpoints.wait_until_finished(manager)
    manager.close()
  manager = checkpoints.create_manager(str(tmp_path), config)
  assert sorted(manager.all_steps()) == [1, 5, 6]
  assert manager.metrics(1) == {'mAP': 0.9}


def test_a_cut_off_metrics_file_sets_its_step_aside(tmp_path, capsys):
  config = smoke.get_config()
  manager = checkpoints.create_manager(str(tmp_path), config)
  for step in (1, 2):
    checkpoints.save(manager, step, {'w': np.zeros(3, np.float32)}, signature(config),
                     metrics={'mAP': 0.5})
  checkpoints.wait_until_finished(manager)
  damaged = tmp_path / 'checkpoints' / '2' / 'metrics' / 'metrics'
  damaged.write_text('{"mA')
  manager = checkpoints.create_manager(str(tmp_path), config)  # orbax reads every metrics file
  assert sorted(manager.all_steps()) == [1]
  assert (tmp_path / 'checkpoints_corrupt' / '2' / 'metrics' / 'metrics').exists()
  assert f'Checkpoint step 2 is unreadable: {damaged}:' in capsys.readouterr().out


def test_a_reader_skips_a_damaged_step_and_leaves_it_in_place(tmp_path, capsys):
  """move_damaged=False (ssd_jax.detect, which may read a workdir a training run holds)."""
  config = smoke.get_config()
  manager = checkpoints.create_manager(str(tmp_path), config)
  state = {'w': np.arange(4096, dtype=np.float32)}
  for step in (1, 2):
    checkpoints.save(manager, step, state, signature(config))
  checkpoints.wait_until_finished(manager)
  arrays = [os.path.join(root, n) for root, _, names in
            os.walk(tmp_path / 'checkpoints' / '2' / 'state') if os.path.basename(root) == 'd'
            for n in names]
  damaged = max(arrays, key=os.path.getsize)
  with open(damaged, 'r+b') as f:
    f.truncate(os.path.getsize(damaged) // 2)
  restored, step = checkpoints.restore(manager, state, signature(config), move_damaged=False)
  assert step == 1
  np.testing.assert_array_equal(restored['w'], state['w'])
  assert sorted(manager.all_steps()) == [1, 2] and not (tmp_path / 'checkpoints_corrupt').exists()
  out = capsys.readouterr().out
  assert f'Checkpoint step 2 is unreadable: {damaged}:' in out
  assert 'Left it in place; using step 1.' in out


def test_a_signature_key_the_checkpoint_lacks_is_a_mismatch():
  """No defaults stand in for keys a checkpoint lacks: each differing or missing key is named."""
  config = smoke.get_config()
  saved = dict(signature(config))
  checkpoints.check_signature(saved, signature(config), 'run')  # Equal: no error.
  del saved['optimizer.ema']
  saved['model.width'] = 0.25
  with pytest.raises(errors.UserError, match=r'in run does not fit this config: model.width: '
                     r'checkpoint has 0.25, config has 0.125; optimizer.ema: not in the '
                     r'checkpoint, config has False;'):
    checkpoints.check_signature(saved, signature(config), 'run')
