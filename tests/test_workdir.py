"""The workdir lock: atomic, refuses a live holder, takes over the lock of a killed run."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from ssd_jax import errors
from ssd_jax import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_lock_is_exclusive_and_released(tmp_path):
  with workdir_lib.lock(str(tmp_path), 'train'):
    with open(tmp_path / 'lock') as f:
      holder = json.load(f)
    assert holder['pid'] == os.getpid() and holder['host'] == socket.gethostname()
    expected = re.escape(f"PID {os.getpid()}, started {holder['started']}")
    with pytest.raises(errors.UserError, match=expected):
      with workdir_lib.lock(str(tmp_path), 'eval'):
        pass
  assert not os.path.exists(tmp_path / 'lock')


@pytest.mark.slow
def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, capsys):
  """`kill -9` leaves the lock file behind; the next run sees that its PID is gone."""
  workdir = str(tmp_path / 'run')
  cmd = [sys.executable, '-m', 'ssd_jax.main', '--config=configs/smoke.py',
         f'--workdir={workdir}', f'--config.input.data_dir={tmp_path / "tfds"}']
  proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  lock = os.path.join(workdir, 'lock')
  deadline = time.monotonic() + 300
  while proc.poll() is None and time.monotonic() < deadline and not (
      os.path.exists(lock) and os.path.getsize(lock)):
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  with open(lock) as f:
    assert json.load(f)['pid'] == proc.pid  # the killed run's lock is still there
  with workdir_lib.lock(workdir, 'train'):
    with open(lock) as f:
      assert json.load(f)['pid'] == os.getpid()
  out = capsys.readouterr().out
  assert f'Took over the stale lock {lock} of a process that no longer runs' in out
  assert f'PID {proc.pid}' in out
  assert [n for n in os.listdir(workdir) if n.startswith('lock')] == []


def test_training_holds_reads_the_lock(tmp_path):
  """detect's race handling asks whether a live training run holds the workdir."""
  lock = tmp_path / 'lock'
  assert not workdir_lib.training_holds(str(tmp_path))
  lock.write_text(json.dumps({'host': socket.gethostname(), 'pid': os.getpid(),
                                  'mode': 'train'}))
  assert workdir_lib.training_holds(str(tmp_path))
  lock.write_text(json.dumps({'host': socket.gethostname(), 'pid': os.getpid(),
                                  'mode': 'eval'}))
  assert not workdir_lib.training_holds(str(tmp_path))
  lock.write_text(json.dumps({'host': socket.gethostname(), 'pid': 2**22 + 7,
                                  'mode': 'train'}))
  assert not workdir_lib.training_holds(str(tmp_path))
