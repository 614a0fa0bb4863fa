"""One channel for what a run tells its user: printed by process 0 only, flushed at once.

Progress lines, data-problem summaries and evaluation tables go through `note`, so an 8-host
run prints one log (the other processes stay silent; their problems still raise).
`import_tensorflow_quietly` keeps TensorFlow's start-up notes off the user's terminal.
"""

import importlib.util
import os
import sys

import jax


def note(message: str) -> None:
  """Prints `message` on process 0."""
  if jax.process_index() == 0:
    print(message, flush=True)


def import_tensorflow_quietly() -> None:
  """Imports TensorFlow with file descriptor 2 closed off.

  Its C++ start-up prints oneDNN notes to stderr before its logging can be configured
  (TF_CPP_MIN_LOG_LEVEL does not reach them). Without TensorFlow installed (a bare accelerator
  machine, `input.dataset='synthetic'`) it does nothing; another import error still raises.
  """
  if importlib.util.find_spec('tensorflow') is None:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, 'w') as devnull:
      os.dup2(devnull.fileno(), 2)
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  finally:
    os.dup2(saved, 2)
    os.close(saved)
