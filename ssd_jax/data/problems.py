"""Counted warnings for bad input found while reading or preprocessing data.

Policy (docs/data.md): problems that can be repaired or skipped are counted here and logged
with the file or object they concern (the first few of each kind, then every 1000th), never
dropped silently. `COUNTS` holds the totals for this process; `summary()` formats them.
Inside tf.data graphs, `report_if` records through a `tf.py_function` that only runs when
its condition holds, so clean data pays nothing.
"""

import collections
import threading

from absl import logging
import tensorflow as tf

COUNTS = collections.Counter()
_LOCK = threading.Lock()
_LOG_FIRST = 10


def record(kind: str, message: str, count: int = 1) -> None:
  """Counts `count` problems of `kind`, logging `message` for the first few."""
  with _LOCK:
    before = COUNTS[kind]
    COUNTS[kind] += count
    after = COUNTS[kind]
  if before < _LOG_FIRST or before // 1000 != after // 1000:
    logging.warning('Data problem [%s] %s (%d so far in this process).', kind, message, after)


def reset() -> None:
  with _LOCK:
    COUNTS.clear()


def summary() -> str:
  with _LOCK:
    return ', '.join(f'{k}: {v}' for k, v in sorted(COUNTS.items())) or 'none'


def report_if(cond, kind: str, name, count, what: str):
  """Graph-safe: records `count` problems of `kind` for example `name` when `cond`."""

  def _record(name_t, count_t):
    n = name_t.numpy()
    n = n.decode('utf-8', 'replace') if isinstance(n, bytes) else str(n)
    c = int(count_t.numpy())
    record(kind, f'{n}: {c} {what}', c)
    return 0

  return tf.cond(
      cond,
      lambda: tf.py_function(_record, [name, tf.cast(count, tf.int64)], tf.int32),
      lambda: tf.constant(0))
