"""The log filter drops exactly the habitual messages, and those messages are still emitted
by the libraries as `quiet.HABITUAL` spells them (fails when a library changes its text)."""

import logging

import numpy as np
import pytest

from configs import smoke
from ssd_jax import checkpoints
from ssd_jax import quiet
from ssd_jax.data import shapes
from tests import model_setup


def save_without_metrics(tmp_path):
  config = smoke.get_config()
  manager = checkpoints.create_manager(str(tmp_path), config)
  checkpoints.save(manager, 1, {'w': np.zeros(3, np.float32)},
                   checkpoints.model_signature(config, model_setup.default_boxes(config)))
  checkpoints.wait_until_finished(manager)


def make_builder(tmp_path):
  shapes.make_builder(3, 2, seed=11, data_dir=str(tmp_path))


def warnings_logged(action, tmp_path, filtered: bool) -> list[str]:
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  absl_logger = logging.getLogger('absl')
  absl_logger.addHandler(handler)
  if not filtered:
    absl_logger.removeFilter(quiet.FILTER)
  try:
    action(tmp_path)
  finally:
    absl_logger.addFilter(quiet.FILTER)
    absl_logger.removeHandler(handler)
  return [r.msg for r in records if r.levelno >= logging.WARNING and isinstance(r.msg, str)]


@pytest.mark.parametrize('library,action', [('orbax', save_without_metrics),
                                            ('tfds', make_builder)])
def test_a_habitual_message_is_emitted_and_dropped(library, action, tmp_path):
  text = dict(quiet.HABITUAL)[library]
  unfiltered = warnings_logged(action, tmp_path / 'a', filtered=False)
  assert [m for m in unfiltered if m.startswith(text)], unfiltered  # The library's own text.
  assert not [m for m in warnings_logged(action, tmp_path / 'b', filtered=True)
              if m.startswith(text)]


def test_other_warnings_pass():
  record = logging.LogRecord('absl', logging.WARNING, __file__, 1, 'A real warning: %s',
                             ('kept',), None)
  assert quiet.FILTER.filter(record)
