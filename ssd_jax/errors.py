"""The error type for what a user must fix: bad flags, files, configs or workdirs.

Command lines (`ssd_jax.main`, `ssd_jax.evaluate`, ...) run their work through `run_command`,
which prints a `UserError` (or an OSError such as a full disk) as one line, without a
traceback, and exits with status 1; `--verbose` (each command defines it with
`cli.define_verbose()`) or SSD_JAX_TRACEBACK=1 shows the traceback. The message names the
file, key, step or box at fault. `UserError` subclasses ValueError so that library callers
that catch ValueError keep working.
"""

import errno
import os
import shutil
import sys
from typing import Callable

from absl import flags


class UserError(ValueError):
  """Bad input or state that the user must fix; its message is one self-contained line."""


def disk_full(path: str) -> UserError:
  """The one-line error for a full disk while writing `path`, with the space left there."""
  folder = os.path.dirname(os.path.abspath(path))
  try:
    free = f'{shutil.disk_usage(folder).free / 2**20:.1f} MiB free on {folder}'
  except OSError:
    free = f'free space on {folder} unknown'
  return UserError(f'cannot write {path}: disk full ({free}).')


def find_disk_full(error: BaseException | None) -> OSError | None:
  """The ENOSPC/EDQUOT OSError in `error`'s cause/context chain, if any."""
  while error is not None:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
      return error
    error = error.__cause__ or error.__context__
  return None


def one_line(error: BaseException) -> str:
  """The message a command prints for `error`: one line naming the culprit.

  A full disk names the path and the space left there (OSError ENOSPC).
  """
  full = find_disk_full(error) if isinstance(error, OSError) else None
  if full is not None:
    return str(disk_full(full.filename or '?'))
  if isinstance(error, OSError) and error.filename and error.strerror:
    return f'{error.filename}: {error.strerror}'
  return ' '.join(str(error).split()) or type(error).__name__


def show_traceback(verbose: bool | None = None) -> bool:
  """Whether a command shows tracebacks: --verbose (or `verbose`) or SSD_JAX_TRACEBACK=1."""
  if verbose is None:
    verbose = (flags.FLAGS.is_parsed() and 'verbose' in flags.FLAGS
               and bool(flags.FLAGS.verbose))
  return verbose or os.environ.get('SSD_JAX_TRACEBACK', '') not in ('', '0')


def run_command(prog: str, fn: Callable[[], object], also: tuple = ()) -> None:
  """Calls `fn()`; a UserError, OSError or one of `also` exits with `<prog>: error: <line>`."""
  try:
    fn()
  except (UserError, OSError) + tuple(also) as e:
    if show_traceback():
      raise
    sys.exit(f'{prog}: error: {one_line(e)}')
