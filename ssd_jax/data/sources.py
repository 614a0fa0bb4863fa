"""Batches for the training loop as numpy dicts, from the config's data source.

`config.input.dataset='synthetic'` (ssd_jax/data/synthetic.py) needs neither TensorFlow nor
tfds; every other data set goes through the tf.data pipeline (`input_pipeline`), imported
here only when it is used.
"""

from ssd_jax import errors
from ssd_jax.data import synthetic
from ssd_jax.data.info import DatasetInfo


def _input_pipeline(config):
  """`ssd_jax.data.input_pipeline`; a one-line UserError where TensorFlow/tfds are missing."""
  try:
    from ssd_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.UserError(
        f'config.input.dataset={config.input.dataset!r} is read with tf.data, which needs '
        f'tensorflow and tensorflow-datasets ({e}); without them only '
        f"input.dataset='synthetic' runs.") from e
  return input_pipeline


def missing_data(config, *, training: bool = True) -> str | None:
  """Why the config's data cannot be read here without a download (`input_pipeline.
  missing_data`, or TensorFlow not installed); None when it can. Prepares nothing."""
  if config.input.dataset == synthetic.NAME:
    return None
  try:
    input_pipeline = _input_pipeline(config)
  except errors.UserError as e:
    return str(e)
  return input_pipeline.missing_data(config, training=training)


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
  return _input_pipeline(config).get_dataset_info(config)


def train_batches(config, *, start_step=0, process_index=None, process_count=None):
  """Endless iterator of this process's training batches (numpy dicts, TRAIN_KEYS)."""
  pi, pc = _process(process_index, process_count)
  if config.input.dataset == synthetic.NAME:
    return synthetic.train_batches(config, start_step=start_step, process_index=pi,
                                   process_count=pc)
  input_pipeline = _input_pipeline(config)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return iter(tfds.as_numpy(input_pipeline.create_train_dataset(
      config, start_step=start_step, process_index=pi, process_count=pc)))


def eval_batches(config, *, process_index=None, process_count=None):
  """One pass over this process's part of the eval split (numpy dicts, EVAL_KEYS)."""
  pi, pc = _process(process_index, process_count)
  if config.input.dataset == synthetic.NAME:
    return synthetic.eval_batches(config, process_index=pi, process_count=pc)
  input_pipeline = _input_pipeline(config)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return iter(tfds.as_numpy(input_pipeline.create_eval_dataset(
      config, process_index=pi, process_count=pc)))
