"""SIGTERM (cluster preemption) and SIGINT (Ctrl-C) during training: stop at a step, saved.

On the first signal the run finishes the step it is in, saves a checkpoint of that step, waits
for the save, releases the workdir lock and exits with one line on stderr,

  stopped at step N by SIGTERM; checkpoint saved; rerun the same command to resume

and exit status 128 + the signal number (143 for SIGTERM, 130 for SIGINT, what a shell
reports for a job that a signal ended: the run did not finish; a job script or scheduler that
requeues on a non-zero status reruns it). A second signal, at any time after the first, exits
at once (same status) without waiting for the save: the save in flight is left as orbax's
temporary folder `<step>.orbax-checkpoint-tmp*`, which is never read as a checkpoint; the
next training run removes it, saying so (`checkpoints.remove_unfinished`), and resumes from
the last complete step.

Single process: this module's handlers set a flag, read once per step (`Stopper.should_stop`).
Multi-host (`jax.distributed` initialized): every process must save the same step. JAX's
preemption sync manager (started by `jax.distributed.initialize`) catches SIGTERM itself (a
C++ handler, the cluster's preemption notice), tells the coordination service, and
`multihost_utils.reached_preemption_sync_point(step)`, called by every process at every step
(through orbax's `CheckpointManager.reached_preemption`), turns True on all of them at the
same step. SIGINT on a host is forwarded to that mechanism as a SIGTERM to itself, so Ctrl-C
on one host stops all of them at one step too.
"""

import contextlib
import os
import re
import signal
import sys
import threading

import jax
from jax._src import distributed  # pylint: disable=g-direct-jax-internal-import

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
  """Raised by the training loop after the checkpoint of `step` is saved on a signal."""

  def __init__(self, step: int, signal_name: str, signum: int):
    super().__init__(f'stopped at step {step} by {signal_name}; checkpoint saved; rerun the '
                     'same command to resume')
    self.step, self.signal_name, self.exit_status = step, signal_name, 128 + signum


def _synced() -> bool:
  """Whether JAX's preemption sync manager runs (multi-host: it decides the step)."""
  return (distributed.global_state.client is not None and
          distributed.global_state.preemption_sync_manager is not None)


def last_complete_step(checkpoint_dir: str) -> int | None:
  """The newest finished step folder in `checkpoint_dir` (temporary folders do not count)."""
  try:
    steps = [int(n) for n in os.listdir(checkpoint_dir) if re.fullmatch(r'\d+', n)]
  except OSError:
    return None
  return max(steps, default=None)


class Stopper:
  """Installs the handlers for a training run (a context manager); `should_stop(step)`.

  `workdir` is the run's folder: a second signal removes this run's lock there before it
  exits. Outside the main thread (a library caller's thread), nothing is installed.
  """

  def __init__(self, workdir: str, release_lock=None):
    self.workdir = workdir
    self.release_lock = release_lock  # Called (no arguments) by a second signal's exit.
    self.signum = None  # The first signal received by this process.
    self._saved = {}
    self._saved_fd = -1
    self._write_fd = -1

  # --- handlers -------------------------------------------------------------------------
  # Python runs a signal's handler in the main thread, between bytecodes: not while the main
  # thread waits in C++ (a save, a device transfer), and two signals that arrive meanwhile
  # make one call. So the handlers themselves do nothing (they only replace the default
  # action, KeyboardInterrupt for SIGINT); the C-level handler also writes each signal's
  # number to a pipe (`signal.set_wakeup_fd`), which a thread reads: it sees every signal at
  # once, sets the flag on the first and exits on the second.

  def _ignore(self, signum, frame):
    del signum, frame

  def _watch(self, read_fd: int):
    while True:
      try:
        data = os.read(read_fd, 64)
      except OSError:
        return
      if not data:
        os.close(read_fd)
        return
      for signum in data:
        if signum in STOP_SIGNALS and signal.getsignal(signum) == self._ignore:
          self._received(signum)

  def _received(self, signum):
    if self.signum is not None:
      self._abort(signum)
    self.signum = signum
    if _synced() and signum != signal.SIGTERM:  # Tell every process, through JAX's notice.
      os.kill(os.getpid(), signal.SIGTERM)

  def _abort(self, signum):
    name = signal.Signals(signum).name
    step = last_complete_step(os.path.join(self.workdir, 'checkpoints'))
    kept = f'the last complete checkpoint is step {step}' if step is not None else (
        'there is no complete checkpoint')
    with contextlib.suppress(Exception):
      if self.release_lock is not None:
        self.release_lock()
    if jax.process_index() == 0:
      with contextlib.suppress(Exception):
        sys.stdout.flush()
      os.write(2, f'second signal ({name}): stopped at once without saving; {kept}; rerun '
               'the same command to resume\n'.encode())
    os._exit(128 + signum)  # pylint: disable=protected-access  # No cleanup, no save threads.

  def _install(self, signals):
    for signum in signals:
      signal.signal(signum, self._ignore)

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self
    self._saved = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    read_fd, self._write_fd = os.pipe()
    os.set_blocking(self._write_fd, False)
    self._saved_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
    threading.Thread(target=self._watch, args=(read_fd,), daemon=True,
                     name='ssd_jax-signals').start()
    # Multi-host: JAX's preemption notifier handles SIGTERM until the stop step is agreed.
    self._install([s for s in STOP_SIGNALS if not (_synced() and s == signal.SIGTERM)])
    return self

  def __exit__(self, *exc):
    if not self._saved:
      return False
    for signum, handler in self._saved.items():
      signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    signal.set_wakeup_fd(self._saved_fd)
    os.close(self._write_fd)  # Ends the thread.
    return False

  # --- the loop's side ------------------------------------------------------------------

  def should_stop(self, step: int, manager) -> bool:
    """Whether to save `step` and stop; all processes agree (call it at every step)."""
    if _synced():
      stop = manager.reached_preemption(step)
    else:
      stop = self.signum is not None
    if stop:
      if _synced() and self.signum is None:
        self.signum = signal.SIGTERM  # The notice came from another process.
      if _synced() and self._saved:
        self._install([signal.SIGTERM])  # From now on any signal exits at once.
    return stop

  def stopped(self, step: int) -> Stopped:
    signum = self.signum if self.signum is not None else signal.SIGTERM
    return Stopped(step, signal.Signals(signum).name, signum)
