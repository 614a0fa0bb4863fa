"""Silences what tfds logs by habit, not because something is wrong (imported for effect).

tfds warns "Using custom data configuration: <the whole config>" each time a builder is
made with a config that is not in its class's BUILDER_CONFIGS, which is every folder
builder and every non-default shapes set: several multi-line warnings per run, between the
progress lines. A filter on absl's logger drops exactly that message; every other warning
passes.
"""

import logging

_HABITUAL = ('Using custom data configuration',)


class _DropHabitual(logging.Filter):

  def filter(self, record):
    return not (isinstance(record.msg, str) and record.msg.startswith(_HABITUAL))


FILTER = _DropHabitual()
logging.getLogger('absl').addFilter(FILTER)  # A no-op if already added (same object).
