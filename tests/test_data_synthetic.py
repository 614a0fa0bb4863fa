"""The synthetic in-memory source: shapes and keys of the tf.data pipeline's batches, the
eval split read once over processes, and the process share of the global batch."""

import numpy as np
import pytest

from configs import smoke
from ssd_jax.data import synthetic


def _config():
  config = smoke.get_config()
  config.input.dataset = 'synthetic'
  config.input.batch_size = 4
  config.input.eval_batch_size = 4
  config.input.synthetic_batches = 3
  return config


def test_train_batches_cycle_a_fixed_pool_with_valid_boxes():
  config = _config()
  batches = synthetic.train_batches(config, start_step=1, process_index=0, process_count=2)
  first = [next(batches) for _ in range(4)]
  assert first[0] is first[3] and first[0] is not first[1]  # 3 batches, cycled.
  b = first[0]
  assert b['image'].shape == (2, 96, 96, 3) and b['image'].dtype == np.float32
  assert b['boxes'].shape == (2, 16, 4) and b['labels'].shape == b['mask'].shape == (2, 16)
  assert set(b) == {'image', 'boxes', 'labels', 'mask', 'difficult', 'crowd'}
  boxes = b['boxes'][b['mask']]
  assert np.all(boxes[:, 2:] > boxes[:, :2]) and np.all((boxes >= 0) & (boxes <= 1))
  assert 1 <= b['mask'].sum(1).min() and b['mask'].sum(1).max() <= synthetic.MAX_OBJECTS
  labels = b['labels'][b['mask']]
  assert labels.min() >= 1 and labels.max() <= len(config.input.class_names)
  # Resumed at step 4 = 1 + 3: the same batch as at step 1.
  again = next(synthetic.train_batches(config, start_step=4, process_index=0, process_count=2))
  np.testing.assert_array_equal(again['image'], b['image'])


def test_eval_split_is_read_once_over_processes():
  config = _config()
  config.eval.num_images = 10
  ids = []
  for pi in range(2):
    for batch in synthetic.eval_batches(config, process_index=pi, process_count=2):
      assert batch['image'].shape[0] == 2 and batch['orig_size'].tolist() == [[96, 96]] * 2
      ids += batch['image_id'][batch['example_mask']].tolist()
  assert sorted(ids) == list(range(10))
  assert synthetic.dataset_info(config).num_eval_examples == 10


def test_a_batch_not_split_by_the_processes_is_refused():
  config = _config()
  config.input.batch_size = 5
  with pytest.raises(ValueError, match='batch_size 5 not divisible by 2 processes'):
    next(synthetic.train_batches(config, process_index=0, process_count=2))
