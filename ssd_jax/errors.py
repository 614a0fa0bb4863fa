"""The error type for what a user must fix: bad flags, files, configs or workdirs.

Command lines (`ssd_jax.main`, `ssd_jax.evaluate`, ...) print a `UserError` as one line,
without a traceback, and exit non-zero (`--verbose` or SSD_JAX_TRACEBACK=1 shows the
traceback). The message names the file, key, step or box at fault. It subclasses ValueError so
that library callers that catch ValueError keep working.
"""


class UserError(ValueError):
  """Bad input or state that the user must fix; its message is one self-contained line."""
