"""The error type for what a user must fix: bad flags, files, configs or workdirs.

Command lines (`ssd_jax.main`, `ssd_jax.evaluate`, ...) print a `UserError` as one line,
without a traceback, and exit non-zero (`--verbose` or SSD_JAX_TRACEBACK=1 shows the
traceback). The message names the file, key, step or box at fault. It subclasses ValueError so
that library callers that catch ValueError keep working.
"""

import errno
import os
import shutil


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


def show_traceback(verbose: bool) -> bool:
  """Whether a command shows tracebacks: --verbose or SSD_JAX_TRACEBACK=1."""
  return verbose or os.environ.get('SSD_JAX_TRACEBACK', '') not in ('', '0')
