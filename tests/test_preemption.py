"""SIGTERM and SIGINT sent to a real `python -m ssd_jax.main` training run (smoke config).

The child runs in its own session (`start_new_session=True`) with default signal handlers
(`preexec_fn`), so a SIGINT is not ignored the way a background job of a non-interactive
shell ignores it.
"""

import glob
import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # Each test trains the smoke config in a subprocess.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 400
ARGS = ['--config=configs/smoke.py', f'--config.num_train_steps={STEPS}',
        '--config.checkpoint_every_steps=100', f'--config.eval.every_steps={STEPS}',
        '--config.log_every_steps=1']
STEP_LINE = re.compile(rf'^step (\d+)/{STEPS}:')


def _default_signals():
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, signal.SIG_DFL)


class Run:
  """`python -m ssd_jax.main` training in `workdir`, its stdout read line by line."""

  def __init__(self, workdir, *extra):
    self.stderr_path = os.path.join(os.path.dirname(workdir), 'stderr.txt')
    self.stderr_file = open(self.stderr_path, 'w')
    self.proc = subprocess.Popen(
        [sys.executable, '-m', 'ssd_jax.main', f'--workdir={workdir}', *ARGS, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=self.stderr_file, text=True,
        start_new_session=True, preexec_fn=_default_signals)
    self.lines = []

  def wait_for(self, pattern, timeout=300):
    """Reads stdout until a line matches `pattern`; returns the match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      line = self.proc.stdout.readline()
      if not line:
        break
      self.lines.append(line)
      match = re.search(pattern, line)
      if match:
        return match
    self.proc.kill()
    raise AssertionError(f'no line matching {pattern!r}; stdout:\n{"".join(self.lines)}')

  def finish(self, timeout=300):
    """Waits for the exit; returns (status, stdout, stderr)."""
    out, _ = self.proc.communicate(timeout=timeout)
    self.stderr_file.close()
    with open(self.stderr_path) as f:
      return self.proc.returncode, ''.join(self.lines) + out, f.read()


def _steps(workdir):
  folder = os.path.join(workdir, 'checkpoints')
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit())


def test_sigterm_then_sigint_save_the_step_and_the_rerun_resumes(tmp_path):
  workdir = str(tmp_path / 'run')
  run = Run(workdir)
  run.wait_for(r'^step 5/')
  run.proc.send_signal(signal.SIGTERM)
  status, out, err = run.finish()
  assert status == 128 + signal.SIGTERM, err
  lines = err.strip().splitlines()
  stopped = re.fullmatch(r'stopped at step (\d+) by SIGTERM; checkpoint saved; rerun the same '
                         r'command to resume', lines[-1])
  assert stopped, err
  step = int(stopped.group(1))
  assert 'Traceback' not in err
  last_logged = max(int(m.group(1)) for m in map(STEP_LINE.match, out.splitlines()) if m)
  assert step == last_logged >= 5  # The step it was in, finished (and logged).
  assert step in _steps(workdir)
  assert not os.path.exists(os.path.join(workdir, 'lock'))

  # The same command resumes from that step; Ctrl-C (SIGINT) stops it at a later step.
  run = Run(workdir)
  run.wait_for(rf'^Resuming from the checkpoint of step {step} ')
  first = int(run.wait_for(STEP_LINE.pattern).group(1))
  assert first == step + 1
  run.wait_for(rf'^step {step + 3}/')
  run.proc.send_signal(signal.SIGINT)
  status, out, err = run.finish()
  assert status == 128 + signal.SIGINT, err
  assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, err
  stopped = re.fullmatch(r'stopped at step (\d+) by SIGINT; checkpoint saved; rerun the same '
                         r'command to resume', err.strip().splitlines()[-1])
  assert stopped, err
  assert int(stopped.group(1)) > step + 2
  assert int(stopped.group(1)) in _steps(workdir)
  assert not os.path.exists(os.path.join(workdir, 'lock'))


def test_a_second_signal_during_the_save_exits_at_once(tmp_path):
  """The second SIGINT is sent while the temporary folder of a step after the one last seen
  logged before the first SIGINT exists: during the stop's save (saves every step)."""
  workdir = str(tmp_path / 'run')
  run = Run(workdir, '--config.checkpoint_every_steps=1', '--config.keep_checkpoints=2')
  logged = int(run.wait_for(r'^step (\d+)/').group(1)) + 4
  run.wait_for(rf'^step {logged}/')
  folder = os.path.join(workdir, 'checkpoints')
  pattern = os.path.join(folder, '*.orbax-checkpoint-tmp*')
  run.proc.send_signal(signal.SIGINT)
  deadline = time.monotonic() + 60
  saving = []
  while not saving and run.proc.poll() is None and time.monotonic() < deadline:
    saving = [n for n in os.listdir(folder)
              if '.orbax-checkpoint-tmp' in n and int(n.split('.')[0]) > logged]
    time.sleep(0.001)
  assert saving, 'no save after the first SIGINT was seen in flight'
  run.proc.send_signal(signal.SIGINT)
  status, _, err = run.finish()
  assert status == 128 + signal.SIGINT, err
  assert 'Traceback' not in err and 'Save Finalize' not in err, err
  line = re.fullmatch(r'second signal \(SIGINT\): stopped at once without saving; the last '
                      r'complete checkpoint is step (\d+); rerun the same command to resume',
                      err.strip().splitlines()[-1])
  assert line, err
  complete = int(line.group(1))
  assert complete == max(_steps(workdir))
  assert not os.path.exists(os.path.join(workdir, 'lock'))

  # The next start removes a leftover temporary folder, saying so, and resumes from the last
  # complete step, which restores.
  leftovers = glob.glob(pattern)
  print("LEFTOVERS", leftovers, err)
  run = Run(workdir)
  run.wait_for(rf'^Resuming from the checkpoint of step {complete} ')
  run.proc.send_signal(signal.SIGTERM)
  status, out, err = run.finish()
  assert status == 128 + signal.SIGTERM, err
  for leftover in leftovers:
    assert f'Removed {leftover}: the unfinished save of an interrupted run' in out
  assert not glob.glob(pattern)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_two_processes_stop_at_the_same_step(signum, tmp_path):
  """A signal to process 1 of a 2-process run: JAX's preemption sync point (SIGINT is
  forwarded to it as a SIGTERM) makes both save and stop at one step; process 0, which got no
  signal, prints the line."""
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  workdir = str(tmp_path / 'run')
  procs = []
  for pid in range(2):
    procs.append(subprocess.Popen(
        [sys.executable, '-m', 'ssd_jax.main', f'--workdir={workdir}', *ARGS,
         f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2', f'--process_id={pid}'],
        cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_default_signals))
  lines = []
  for line in procs[0].stdout:
    lines.append(line)
    if line.startswith('step 5/'):
      break
  procs[1].send_signal(signum)
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode in (128 + signal.SIGTERM, 128 + signum), (out[-2000:], err[-2000:])
    assert 'Traceback' not in err, err
  err0 = outputs[0][1].strip().splitlines()
  stopped = re.fullmatch(r'stopped at step (\d+) by SIGTERM; checkpoint saved; rerun the same '
                         r'command to resume', err0[-1])
  assert stopped, err0
  assert 'stopped at step' not in outputs[1][1]  # One line, from process 0.
  step = int(stopped.group(1))
  assert step > 5 and step in _steps(workdir)
  assert not os.path.exists(os.path.join(workdir, 'lock'))
