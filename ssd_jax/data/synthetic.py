"""The `synthetic` data source: random images and boxes in memory, for throughput (no TF).

`config.input.dataset='synthetic'` trains on `config.input.synthetic_batches` distinct random
batches, made once at start-up and cycled, so the host does no per-step work and the figure
is the accelerator's (plus the host-to-device copy). Images are standard-normal floats, as
after normalization; each image has 1..7 random boxes with random labels.

It measures speed; it is not a data set to score. Its eval split (`synthetic_batches` eval
batches of the same kind, at the eval input size) goes through the real evaluation path, so
a run on it evaluates, but the mAP of a model on random boxes says nothing.
"""

import numpy as np

from ssd_jax import anchors
from ssd_jax.data.info import DatasetInfo

NAME = 'synthetic'
MAX_OBJECTS = 7  # Boxes per image: 1 .. MAX_OBJECTS.


def random_batch(rng: np.random.Generator, batch_size: int, size: int, max_boxes: int,
                 num_classes: int) -> dict[str, np.ndarray]:
  """A train batch: normal images [B, S, S, 3], 1..7 boxes (yxyx, 0..1) per image, padded."""
  low = rng.uniform(0, 0.7, (batch_size, max_boxes, 2))
  boxes = np.concatenate([low, low + rng.uniform(0.05, 0.3, (batch_size, max_boxes, 2))], -1)
  count = rng.integers(1, MAX_OBJECTS + 1, (batch_size, 1))
  return {
      'image': rng.standard_normal((batch_size, size, size, 3), np.float32),
      'boxes': boxes.astype(np.float32),
      'labels': rng.integers(1, num_classes + 1, (batch_size, max_boxes)).astype(np.int32),
      'mask': np.arange(max_boxes)[None, :] < count,
      'difficult': np.zeros((batch_size, max_boxes), bool),
      'crowd': np.zeros((batch_size, max_boxes), bool),
  }


def dataset_info(config) -> DatasetInfo:
  num_train = config.input.synthetic_batches * config.input.batch_size
  num_eval = config.input.synthetic_batches * config.input.eval_batch_size
  if config.eval.num_images is not None:
    num_eval = min(num_eval, int(config.eval.num_images))
  return DatasetInfo(name=NAME, class_names=tuple(config.input.class_names),
                     num_train_examples=num_train, num_eval_examples=num_eval,
                     train_split='train', eval_split='validation', image_id_dtype='int64')


def _local_batch_size(global_size: int, process_count: int, what: str) -> int:
  if global_size % process_count:
    raise ValueError(f'{what} {global_size} not divisible by {process_count} processes')
  return global_size // process_count


def train_batches(config, *, start_step=0, process_index=0, process_count=1):
  """Endless batches of this process's part of the global batch (keys as the tfds pipeline's).

  The same `synthetic_batches` batches in turn; which one comes first depends on
  `start_step`, so a resumed run continues the cycle.
  """
  size = _local_batch_size(config.input.batch_size, process_count, 'batch_size')
  pool = [random_batch(np.random.default_rng([config.input.seed, process_index, k]), size,
                       config.model.input_size, config.input.max_boxes,
                       len(config.input.class_names))
          for k in range(config.input.synthetic_batches)]
  step = start_step
  while True:
    yield pool[step % len(pool)]
    step += 1


def eval_batches(config, *, process_index=0, process_count=1):
  """One pass over the synthetic eval split, batched and padded like the tfds eval pipeline."""
  size = _local_batch_size(config.input.eval_batch_size, process_count, 'eval_batch_size')
  info = dataset_info(config)
  per_process = -(-info.num_eval_examples // process_count)
  image_size = anchors.eval_input_size(config)
  max_boxes = config.input.eval_max_boxes or config.input.max_boxes
  first = process_index * per_process
  for start in range(0, per_process, size):
    rng = np.random.default_rng([config.input.seed, 1000 + process_index, start])
    batch = random_batch(rng, size, image_size, max_boxes, len(config.input.class_names))
    index = first + start + np.arange(size)
    batch['example_mask'] = (start + np.arange(size) < per_process) & (
        index < info.num_eval_examples)
    batch['image_id'] = index.astype(np.int64)
    batch['orig_size'] = np.full((size, 2), image_size, np.int32)
    yield batch
