"""What libraries print by habit, not because something is wrong, kept off the user's terminal.

All of the project's log silencing is here:
- A filter on absl's logger (installed when this module is imported; the data sources and
  the checkpoint code import it) drops exactly the messages in `HABITUAL`: tfds' "Using
  custom data configuration: <the whole config>" for every builder whose config is not in
  its class's BUILDER_CONFIGS (every folder builder and every non-default shapes set), and
  orbax's warning for every save without metrics (checkpoint-only steps). Every other message
  passes; tests/test_quiet.py fails when a library changes the text of one of these.
- `libraries()`, what every command calls before its work: TF_CPP_MIN_LOG_LEVEL=2 unless set
  (TensorFlow's and XLA's C++ INFO lines) and absl verbosity WARNING (progress is printed by
  `report.note`; INFO would add every orbax and tf.data message).
- `import_tensorflow()`: TensorFlow's C++ start-up prints oneDNN notes to stderr before its
  logging can be configured; this imports it with file descriptor 2 closed off.
"""

import importlib.util
import logging
import os
import sys

from absl import logging as absl_logging

# (library, how its message starts) for each message dropped (absl's record.msg).
HABITUAL = (
    ('tfds', 'Using custom data configuration'),
    ('orbax', 'Requested `tracked_metric`; did not provide metrics'),
)


class _DropHabitual(logging.Filter):

  def filter(self, record):
    if not isinstance(record.msg, str):
      return True
    return not record.msg.startswith(tuple(text for _, text in HABITUAL))


FILTER = _DropHabitual()
logging.getLogger('absl').addFilter(FILTER)  # A no-op if already added (same object).


def environment() -> None:
  """TF_CPP_MIN_LOG_LEVEL=2 unless set: call before anything imports TensorFlow or JAX's XLA."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def libraries() -> None:
  """What a command calls first: `environment()` and absl verbosity WARNING."""
  environment()
  absl_logging.set_verbosity(absl_logging.WARNING)


def import_tensorflow() -> None:
  """Imports TensorFlow with file descriptor 2 closed off (an import error still raises).

  Without TensorFlow installed (a bare accelerator machine, `input.dataset='synthetic'`) it
  does nothing.
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
