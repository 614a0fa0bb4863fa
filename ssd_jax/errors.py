"""The error type for what a user must fix: bad flags, files, configs or workdirs.

Command lines (`ssd_jax.main`, `ssd_jax.evaluate`, ...) run their work through `run_command`,
which prints a `UserError` (or an OSError such as a full disk) as one line, without a
traceback, and exits with status 1; `--verbose` (defined here, once for every command) or
SSD_JAX_TRACEBACK=1 shows the traceback. The message names the file, key, step or box at
fault. `UserError` subclasses ValueError so that library callers that catch ValueError keep
working.
"""

import errno
import os
import shutil
import sys
from typing import Callable

from absl import flags

VERBOSE = flags.DEFINE_bool('verbose', False, 'On an error, show the traceback instead of one '
                            'line (also SSD_JAX_TRACEBACK=1).')


class UserError(ValueError):
  """Bad input or state that the user must fix; its message is one self-contained line."""


def one_line(error: BaseException) -> str:
  """The message a command prints for `error`: one line naming the culprit.

  A full disk names the path and the space left there (OSError ENOSPC).
  """
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    where = error.filename or '?'
    try:
      free = shutil.disk_usage(os.path.dirname(os.path.abspath(where))).free
      space = f'{free / 2**20:.1f} MiB free there'
    except OSError:
      space = 'free space unknown'
    return f'{where}: no space left on device ({space}); free some space and run again'
  if isinstance(error, OSError) and error.filename and error.strerror:
    return f'{error.filename}: {error.strerror}'
  return ' '.join(str(error).split()) or type(error).__name__


def show_traceback(verbose: bool | None = None) -> bool:
  """Whether a command shows tracebacks: --verbose (or `verbose`) or SSD_JAX_TRACEBACK=1."""
  if verbose is None:
    verbose = flags.FLAGS.is_parsed() and VERBOSE.value
  return verbose or os.environ.get('SSD_JAX_TRACEBACK', '') not in ('', '0')


def run_command(prog: str, fn: Callable[[], object], also: tuple = ()) -> None:
  """Calls `fn()`; a UserError, OSError or one of `also` exits with `<prog>: error: <line>`."""
  try:
    fn()
  except (UserError, OSError) + tuple(also) as e:
    if show_traceback():
      raise
    sys.exit(f'{prog}: error: {one_line(e)}')
