"""Checkpoint retention across restarts (no training: a tiny state saved by the real manager)."""

import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import smoke
from ssd_jax import checkpoint_damage
from ssd_jax import checkpoints
from ssd_jax import errors
from tests import model_setup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
  assert f"Checkpoint step 2 is unreadable: {tmp_path / 'checkpoints' / '2' / 'state'}:" in out
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


def test_a_restore_that_does_not_fit_is_not_damage(tmp_path):
  """The step reads back as saved: the error propagates and the step stays."""
  config = smoke.get_config()
  manager = checkpoints.create_manager(str(tmp_path), config)
  checkpoints.save(manager, 1, {'w': np.zeros(3, np.float32)}, signature(config))
  checkpoints.wait_until_finished(manager)
  with pytest.raises(Exception) as raised:
    checkpoints.restore(manager, {'w': np.zeros(3, np.float32), 'v': np.zeros(2, np.float32)},
                        signature(config))
  assert not isinstance(raised.value, errors.UserError)
  assert sorted(manager.all_steps()) == [1] and not (tmp_path / 'checkpoints_corrupt').exists()
  assert checkpoint_damage.find_damage(str(tmp_path / 'checkpoints' / '1')) is None


def test_the_step_layout_that_damage_checks_rely_on(tmp_path):
  """Pins orbax's files: JSON where checkpoint_damage parses JSON, known binary files else.

  Fails when orbax adds a file kind (then `checkpoint_damage.json_files` must learn it).
  """
  config = smoke.get_config()
  manager = checkpoints.create_manager(str(tmp_path), config)
  checkpoints.save(manager, 1, {'w': np.arange(64, dtype=np.float32)}, signature(config),
                   metrics={'mAP': 0.5})
  checkpoints.wait_until_finished(manager)
  step_dir = str(tmp_path / 'checkpoints' / '1')
  files = {os.path.join(root, n) for root, _, names in os.walk(step_dir) for n in names}
  parsed = checkpoint_damage.json_files(step_dir)
  for path in parsed:
    with open(path) as f:
      json.load(f)
  assert {os.path.relpath(p, step_dir) for p in parsed} >= {
      '_CHECKPOINT_METADATA', 'meta/metadata', 'metrics/metrics', 'state/_METADATA'}
  for path in files - set(parsed):
    name = os.path.basename(path)
    assert (name in ('commit_success.txt', 'manifest.ocdbt') or
            os.path.basename(os.path.dirname(path)) == 'd'), path
    if name == 'commit_success.txt':  # A marker, not JSON.
      with open(path) as f:
        assert not f.read().lstrip().startswith(('{', '['))


_SAVE_ON_TWO_DEVICES = """
import sys
import jax, jax.numpy as jnp, numpy as np
from configs import smoke
from ssd_jax import checkpoints, models
config = smoke.get_config()
mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
state = {'w': jax.device_put(jnp.arange(8.0), jax.sharding.NamedSharding(
    mesh, jax.sharding.PartitionSpec('data')))}
manager = checkpoints.create_manager(sys.argv[1], config)
checkpoints.save(manager, 1, state,
                 checkpoints.model_signature(config, models.default_boxes(config)))
checkpoints.wait_until_finished(manager)
"""


@pytest.mark.slow
def test_a_step_of_another_device_count_is_not_damage(tmp_path):
  """Read back on 1 device, a step saved over 2: readable (a raw orbax restore would refuse)."""
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=2')
  subprocess.run([sys.executable, '-c', _SAVE_ON_TWO_DEVICES, str(tmp_path)], cwd=REPO,
                 env=env, check=True, timeout=300, capture_output=True)
  step_dir = str(tmp_path / 'checkpoints' / '1')
  assert checkpoint_damage.find_damage(step_dir) is None
  arrays = [os.path.join(root, n) for root, _, names in os.walk(os.path.join(step_dir, 'state'))
            if os.path.basename(root) == 'd' for n in names]
  for path in arrays:
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)
  assert checkpoint_damage.find_damage(step_dir)[0] == os.path.join(step_dir, 'state')


def _saved_steps(tmp_path, config, steps, state):
  config.keep_checkpoints = len(steps)
  manager = checkpoints.create_manager(str(tmp_path), config)
  for step in steps:
    checkpoints.save(manager, step, state, signature(config))
  checkpoints.wait_until_finished(manager)
  return manager


def _deleting_reads(monkeypatch, tmp_path, deleted):
  """Each read of a step in `deleted` first deletes its folder (retention, in a training run,
  between the reader's listing and its read)."""
  original = checkpoints._restore_step

  def read(manager, state, sig, step):
    if step in deleted:
      import shutil  # pylint: disable=g-import-not-at-top
      shutil.rmtree(tmp_path / 'checkpoints' / str(step))
    return original(manager, state, sig, step)
  monkeypatch.setattr(checkpoints, '_restore_step', read)


def test_a_reader_retries_once_when_the_step_it_reads_is_deleted(tmp_path, monkeypatch, capsys):
  config = smoke.get_config()
  state = {'w': np.arange(64, dtype=np.float32)}
  manager = _saved_steps(tmp_path, config, (1, 2, 3), state)
  _deleting_reads(monkeypatch, tmp_path, {3})
  restored, step = checkpoints.restore(manager, state, signature(config), move_damaged=False,
                                       writer_running=True)
  assert step == 2
  np.testing.assert_array_equal(restored['w'], state['w'])
  assert ('Checkpoint step 3 was deleted while it was read (training is saving checkpoints); '
          'using the newest complete step.') in capsys.readouterr().out


def test_a_reader_that_loses_the_race_twice_fails_in_one_line(tmp_path, monkeypatch):
  config = smoke.get_config()
  state = {'w': np.arange(64, dtype=np.float32)}
  manager = _saved_steps(tmp_path, config, (1, 2, 3), state)
  _deleting_reads(monkeypatch, tmp_path, {2, 3})
  with pytest.raises(errors.UserError) as raised:
    checkpoints.restore(manager, state, signature(config), move_damaged=False)
  assert str(raised.value) == (f"training is saving checkpoints to {tmp_path / 'checkpoints'}; "
                               'retry.')


def _truncate_arrays(step_dir):
  arrays = [os.path.join(root, n) for root, _, names in os.walk(step_dir / 'state')
            if os.path.basename(root) == 'd' for n in names]
  damaged = max(arrays, key=os.path.getsize)
  with open(damaged, 'r+b') as f:
    f.truncate(os.path.getsize(damaged) // 2)


def test_while_training_runs_a_reader_tries_one_older_step_then_says_retry(tmp_path, capsys):
  """A step that fails while a training run holds the workdir: once the newest complete
  step, then the one line (not the raw TensorStore error)."""
  config = smoke.get_config()
  state = {'w': np.arange(4096, dtype=np.float32)}
  manager = _saved_steps(tmp_path, config, (1, 2, 3), state)
  _truncate_arrays(tmp_path / 'checkpoints' / '3')
  restored, step = checkpoints.restore(manager, state, signature(config), move_damaged=False,
                                       writer_running=True)
  assert step == 2
  np.testing.assert_array_equal(restored['w'], state['w'])
  assert 'Checkpoint step 3 is unreadable' in capsys.readouterr().out
  _truncate_arrays(tmp_path / 'checkpoints' / '2')
  with pytest.raises(errors.UserError, match=r'^training is saving checkpoints to .*; retry\.$'):
    checkpoints.restore(manager, state, signature(config), move_damaged=False,
                        writer_running=True)
  # Without a training run, damaged steps are skipped as before, down to step 1.
  assert checkpoints.restore(manager, state, signature(config), move_damaged=False)[1] == 1


def test_a_bit_flipped_array_is_damage(tmp_path, capsys):
  """Bytes flipped in the middle of an array file decode to other values: the checksum saved
  with the step catches it; the step is moved aside and the previous one restored."""
  config = smoke.get_config()
  rng = np.random.default_rng(0)
  state = {'w': rng.standard_normal(65536).astype(np.float32),
           'b': np.arange(16, dtype=np.int32)}
  _saved_steps(tmp_path, config, (1, 2), state)
  step_dir = tmp_path / 'checkpoints' / '2'
  arrays = [os.path.join(root, n) for root, _, names in os.walk(step_dir / 'state')
            if os.path.basename(root) == 'd' for n in names]
  damaged = max(arrays, key=os.path.getsize)
  with open(damaged, 'r+b') as f:
    middle = os.path.getsize(damaged) // 2
    f.seek(middle)
    data = bytearray(f.read(400))
    f.seek(middle)
    f.write(bytes(b ^ 0x10 for b in data))
  # The flipped step still decodes: only the checksum can tell.
  assert checkpoint_damage.find_damage(str(step_dir)) is None
  manager = checkpoints.create_manager(str(tmp_path), config)
  restored, step = checkpoints.restore(manager, state, signature(config))
  assert step == 1
  np.testing.assert_array_equal(restored['w'], state['w'])
  out = capsys.readouterr().out
  assert re.search(rf"Checkpoint step 2 is unreadable: {re.escape(str(step_dir / 'state'))}: "
                   r"array \['w'\] does not match the checksum saved with it \(saved [0-9a-f]{8}, "
                   r"read [0-9a-f]{8}\): changed on disk\. Moved it to .*checkpoints_corrupt/2; "
                   r'using step 1\.', out), out
  assert (tmp_path / 'checkpoints_corrupt' / '2').is_dir()


def test_checksums_tell_arrays_apart():
  """One flipped bit, or two values swapped, changes the checksum (bf16 and int too)."""
  w = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
  base = checkpoints.checksums({'w': w})
  flipped = w.copy()
  flipped.view(np.uint32)[500] ^= 1 << 30
  swapped = w.copy()
  swapped[[3, 700]] = swapped[[700, 3]]
  assert checkpoints.checksums({'w': flipped}) != base
  assert checkpoints.checksums({'w': swapped}) != base
  assert checkpoints.checksums({'w': w.copy()}) == base
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  half = jnp.asarray(w, jnp.bfloat16)
  assert checkpoints.checksums({'h': half}) != checkpoints.checksums({'h': -half})
  assert checkpoints.checksums({'i': np.arange(5)}) != checkpoints.checksums(
      {'i': np.arange(5)[::-1].copy()})
