"""The run's folder: checks before a run touches it, one run at a time (the lock).

The other operational safety code has one module each: atomic file writes in `file_io`,
damaged checkpoint steps in `checkpoint_damage`, library log silencing in `quiet`; the files
a run writes besides checkpoints in `run_files`.

The lock is a file `<workdir>/lock` created with `O_CREAT | O_EXCL` (atomic on local
filesystems and on NFSv3+) holding the holder's host, PID and start time; process 0 of a run
holds it for all processes. We do not use `fcntl.flock`: on NFS-like filesystems it is either
local to one client or emulated, so two hosts could both "hold" it, and it carries no holder
to name. The price of a plain file is that it survives `kill -9`: a run that finds a lock of
the same host whose PID is no longer alive (or is another process by now: start times differ)
takes it over and says so. A lock of another host cannot be checked from here; the message
names it and the file to delete if that run is gone.
"""

import contextlib
import datetime
import json
import os
import socket
import time
import uuid

import jax
from jax.experimental import multihost_utils
import numpy as np

from ssd_jax import errors
from ssd_jax import report

LOCK = 'lock'


def check(workdir: str, mode: str) -> None:
  """Raises UserError when `workdir` cannot hold a run of `mode` ('train' or 'eval').

  Creates nothing: an evaluation of a mistyped or empty folder leaves no folder behind.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise errors.UserError(f'--workdir={workdir} is a file, not a folder.')
  if mode != 'eval':
    return
  if not os.path.isdir(workdir):
    raise errors.UserError(f'--workdir={workdir} does not exist; nothing to evaluate.')
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  steps = [d for d in os.listdir(ckpt_dir) if d.isdigit()] if os.path.isdir(ckpt_dir) else []
  if not steps:
    raise errors.UserError(f'No checkpoint to evaluate in {ckpt_dir} (is --workdir={workdir} '
                           'the folder of a training run?).')


def _proc_stat(pid: int) -> tuple[str, str] | None:
  """(state, start time in clock ticks since boot) of `pid` from /proc; None where unknown."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      fields = f.read().rsplit(')', 1)[1].split()
    return fields[0], fields[19]
  except (OSError, IndexError):
    return None


def _alive(holder: dict) -> bool:
  """Whether the process of a lock record from this host still runs (not a zombie, not a
  newer process that reuses its PID)."""
  if not isinstance(holder.get('pid'), int):
    return False
  try:
    os.kill(holder['pid'], 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # Another user's process: alive.
  stat = _proc_stat(holder['pid'])
  if stat is None:
    return True
  return stat[0] != 'Z' and holder.get('proc_start') in (None, stat[1])


def _read(path: str) -> dict | None:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except ValueError:
    return {}  # Half-written by a process killed while creating it.


def training_holds(workdir: str) -> bool:
  """Whether a training run holds `workdir` (its lock: mode 'train', alive or of another
  host, which cannot be checked from here)."""
  holder = _read(os.path.join(workdir, LOCK))
  if not holder or holder.get('mode') != 'train':
    return False
  return holder.get('host') != socket.gethostname() or _alive(holder)


def _describe(holder: dict) -> str:
  return (f"host {holder.get('host', '?')}, PID {holder.get('pid', '?')}, started "
          f"{holder.get('started', '?')}")


def _try_lock(path: str, record: dict) -> dict | None:
  """Creates the lock file atomically; returns None on success, else the holder's record."""
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return _read(path) or {}
  try:
    with os.fdopen(fd, 'w') as f:
      json.dump(record, f)
  except OSError as e:
    os.remove(path)
    raise (errors.disk_full(path) if errors.find_disk_full(e) else e) from e
  return None


def _acquire(workdir: str, mode: str) -> str:
  """Takes `<workdir>/lock` for this process; raises UserError naming a live holder."""
  path = os.path.join(workdir, LOCK)
  host = socket.gethostname()
  stat = _proc_stat(os.getpid())
  record = {'host': host, 'pid': os.getpid(), 'proc_start': stat[1] if stat else None,
            'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
            'mode': mode}
  holder = {}
  for _ in range(3):
    holder = _try_lock(path, record)
    if holder is None:
      return path
    if not holder:  # Unreadable: its writer may be between create and write; look again.
      time.sleep(0.2)
      holder = _read(path)
      if holder is None:
        continue
    if holder and (holder.get('host') != host or _alive(holder)):
      break
    # Stale (or half-written) lock: move exactly that file aside, then retry the atomic create.
    aside = f'{path}.stale-{uuid.uuid4().hex[:8]}'
    try:
      os.rename(path, aside)
    except FileNotFoundError:
      continue  # Another run took it over first; the retry sees its lock.
    if _read(aside) != holder:  # Renamed a newer run's lock: put it back, let it win.
      with contextlib.suppress(OSError):
        os.link(aside, path)
      os.remove(aside)
      continue
    os.remove(aside)
    report.note(f'Took over the stale lock {path} of a process that no longer runs '
                f'({_describe(holder)}).' if holder else
                f'Took over the unreadable lock {path} (its writer was killed).')
  raise errors.UserError(
      f'{workdir} is in use by another run ({_describe(holder or {})}; {path}). Wait for it to '
      f'end, or delete {path} if that run is gone.')


@contextlib.contextmanager
def lock(workdir: str, mode: str):
  """Holds the workdir lock for the duration of a run (process 0 takes it for all).

  Every process raises when process 0 could not take the lock, so no process starts work.
  Yields the lock file's path on process 0, None on the others.
  """
  path, failure = None, None
  if jax.process_index() == 0:
    try:
      path = _acquire(workdir, mode)
    except errors.UserError as e:
      failure = e
  if jax.process_count() > 1:
    ok = multihost_utils.broadcast_one_to_all(np.int32(failure is None))
    if not ok and failure is None:
      raise errors.UserError(f'Process 0 could not lock {workdir}; see its output.')
  if failure is not None:
    raise failure
  try:
    yield path
  finally:
    if path is not None:
      release(path)


def release(path: str) -> None:
  """Removes the lock file `path` if this process holds it."""
  held = _read(path)
  if held and held.get('pid') == os.getpid() and held.get('host') == socket.gethostname():
    os.remove(path)
