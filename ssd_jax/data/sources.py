"""Batches for the training loop as numpy dicts, from the config's data source.

`config.input.dataset='synthetic'` (ssd_jax/data/synthetic.py) needs neither TensorFlow nor
tfds; every other data set goes through the tf.data pipeline (`input_pipeline`), imported
here only when it is used.
"""

from ssd_jax.data import synthetic
from ssd_jax.data.info import DatasetInfo


def _process(process_index, process_count):
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  return process_index, process_count


def dataset_info(config) -> DatasetInfo:
  """`input_pipeline.get_dataset_info`, or the synthetic source's."""
  if config.input.dataset == synthetic.NAME:
    return synthetic.dataset_info(config)
  from ssd_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  return input_pipeline.get_dataset_info(config)


def train_batches(config, *, start_step=0, process_index=None, process_count=None):
  """Endless iterator of this process's training batches (numpy dicts, TRAIN_KEYS)."""
  pi, pc = _process(process_index, process_count)
  if config.input.dataset == synthetic.NAME:
    return synthetic.train_batches(config, start_step=start_step, process_index=pi,
                                   process_count=pc)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from ssd_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  return iter(tfds.as_numpy(input_pipeline.create_train_dataset(
      config, start_step=start_step, process_index=pi, process_count=pc)))


def eval_batches(config, *, process_index=None, process_count=None):
  """One pass over this process's part of the eval split (numpy dicts, EVAL_KEYS)."""
  pi, pc = _process(process_index, process_count)
  if config.input.dataset == synthetic.NAME:
    return synthetic.eval_batches(config, process_index=pi, process_count=pc)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from ssd_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  return iter(tfds.as_numpy(input_pipeline.create_eval_dataset(
      config, process_index=pi, process_count=pc)))
