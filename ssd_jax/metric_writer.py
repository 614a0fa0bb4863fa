"""The run's metric writer and progress reporter: clu's where installed, else a fallback.

With clu (the pinned stack): `clu.metric_writers.create_default_writer` (TensorBoard events,
logging only on processes > 0) and `clu.periodic_actions.ReportProgress`. Without it (a bare
accelerator machine): scalars go to the log only, images are not written, and no steps/s
summary is added (the loop's own progress lines still give images/s).
"""

import logging

import numpy as np


class LoggingWriter:
  """clu's MetricWriter interface, writing scalars to `logging` and nothing to disk."""

  def write_scalars(self, step, scalars):
    logging.info('[%d] %s', step, ', '.join(f'{k}={float(v):.6g}' for k, v in scalars.items()))

  def write_images(self, step, images):
    logging.info('[%d] images not written (no clu): %s', step,
                 {k: np.shape(v) for k, v in images.items()})

  def write_hparams(self, hparams):
    logging.info('hparams: %s', hparams)

  def flush(self):
    pass

  def close(self):
    pass


def create_writer(workdir: str, just_logging: bool):
  """clu's default writer for `workdir`, or a `LoggingWriter` when clu is not installed."""
  try:
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
  except ImportError:
    return LoggingWriter()
  return metric_writers.create_default_writer(workdir, just_logging=just_logging)


def create_progress(num_train_steps: int, writer):
  """clu's ReportProgress (steps/s, ETA into `writer`), or a callable that does nothing."""
  try:
    from clu import periodic_actions  # pylint: disable=g-import-not-at-top
  except ImportError:
    return lambda step: None
  return periodic_actions.ReportProgress(num_train_steps=num_train_steps, writer=writer)
