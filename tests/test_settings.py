"""Settings that cannot mean anything end in one line before any work
(config_keys.check_settings)."""

import math
import os

import pytest

from configs import smoke
from ssd_jax import config_keys
from ssd_jax import detect
from ssd_jax import errors
from ssd_jax import train
from tests import command_line

BAD = [
    ('num_train_steps', 0, r'num_train_steps=0: it must be a whole number of at least 1'),
    ('num_train_steps', -5, r'num_train_steps=-5: it must be'),
    ('eval.every_steps', 0, r'eval.every_steps=0: .* at or above num_train_steps evaluates '
     'only at the end'),
    ('checkpoint_every_steps', 0, r'checkpoint_every_steps=0: .* saves only at the end'),
    ('log_every_steps', 0, r'log_every_steps=0: it must be'),
    ('input.batch_size', 0, r'input.batch_size=0: it must be'),
    ('input.eval_batch_size', 0, r'input.eval_batch_size=0: it must be'),
    ('eval.score_threshold', 2.0, r'eval.score_threshold=2.0: it must be a number from 0 to 1'),
    ('eval.score_threshold', math.nan, r'eval.score_threshold=nan: it must be a number from 0'),
    ('eval.score_threshold', -0.5, r'eval.score_threshold=-0.5: it must be'),
    ('eval.nms_iou', 1.5, r'eval.nms_iou=1.5: it must be'),
]


def _set(config, path, value):
  *groups, key = path.split('.')
  node = config
  for group in groups:
    node = node[group]
  node[key] = value


@pytest.mark.parametrize('path, value, message', BAD)
def test_training_refuses_meaningless_settings_before_any_work(path, value, message, tmp_path):
  config = smoke.get_config()
  _set(config, path, value)
  workdir = str(tmp_path / 'run')
  with pytest.raises(errors.UserError, match=message):
    train.train_and_evaluate(config, workdir)
  assert not os.path.exists(workdir)


def test_the_smoke_config_and_edge_values_pass():
  config = smoke.get_config()
  config_keys.check_settings(config, training=True)
  config.eval.every_steps = config.checkpoint_every_steps = 1
  config.eval.score_threshold, config.eval.nms_iou = 0.0, 1.0
  config_keys.check_settings(config, training=True)
  config.num_train_steps = 0  # Evaluating a checkpoint trains nothing.
  config_keys.check_settings(config, training=False)


@pytest.mark.parametrize('value', [2.0, math.nan, -0.1])
def test_detect_refuses_a_score_threshold_outside_0_1(value, tmp_path):
  image = tmp_path / 'a.jpg'
  image.write_bytes(b'')
  # The workdir does not exist: the refusal comes before any work.
  with pytest.raises(errors.UserError, match=rf'--score_threshold={value}: it must be a number '
                                             'from 0 to 1'):
    detect.detect_files(str(tmp_path / 'none'), [str(image)], str(tmp_path / 'd.json'),
                        score_threshold=value)
  assert sorted(os.listdir(tmp_path)) == ['a.jpg']


@pytest.mark.slow
def test_command_line_names_the_setting_in_one_line(tmp_path):
  workdir = tmp_path / 'run'
  result = command_line.run('ssd_jax.main', '--config=configs/smoke.py', f'--workdir={workdir}',
                            '--config.checkpoint_every_steps=0')
  command_line.assert_one_error_line(result, 'ssd_jax.main', 'checkpoint_every_steps=0: it '
                                     'must be a whole number of at least 1')
  assert not workdir.exists()
