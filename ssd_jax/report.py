"""One channel for what a run tells its user: printed by process 0 only, flushed at once.

Progress lines, data-problem summaries and evaluation tables go through `note`, so an 8-host
run prints one log (the other processes stay silent; their problems still raise). What
libraries print by habit is silenced in `ssd_jax.quiet`.
"""

import jax


def note(message: str) -> None:
  """Prints `message` on process 0."""
  if jax.process_index() == 0:
    print(message, flush=True)
