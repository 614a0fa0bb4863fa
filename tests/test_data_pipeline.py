"""Tests for ssd_jax.data.input_pipeline: tfds voc/coco under mock data, shapes, batching."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import default
from ssd_jax import errors
from ssd_jax.data import augment
from ssd_jax.data import input_pipeline
from ssd_jax.data import problems
from ssd_jax.data import shapes

tf.config.set_visible_devices([], 'GPU')

S, M = 64, 12  # Small input size and max_boxes keep the tests fast.


def _config(dataset, **kw):
  config = default.get_config()
  config.input.dataset = dataset
  config.model.input_size = S
  config.input.max_boxes = M
  config.input.batch_size = 4
  config.input.eval_batch_size = 4
  config.input.shuffle_buffer = 8
  if dataset == 'coco':
    config.input.class_names = input_pipeline.COCO_CLASSES
  for k, v in kw.items():
    config.input[k] = v
  return config


def _first(ds):
  return next(iter(tfds.as_numpy(ds)))


def _check_layout(batch, b, num_classes, eval_batch=False):
  assert batch['image'].shape == (b, S, S, 3) and batch['image'].dtype == np.float32
  assert batch['boxes'].shape == (b, M, 4) and batch['boxes'].dtype == np.float32
  for k, dtype in (('labels', np.int32), ('mask', bool), ('difficult', bool), ('crowd', bool)):
    assert batch[k].shape == (b, M) and batch[k].dtype == dtype, k
  assert np.all(np.isfinite(batch['image']))
  m = batch['mask']
  assert np.all(batch['labels'][m] >= 1) and np.all(batch['labels'] <= num_classes)
  assert not np.any(m & batch['crowd'])
  real = batch['labels'] > 0
  bx = batch['boxes'][real]
  assert np.all((bx >= 0) & (bx <= 1))
  assert np.all(bx[:, 2] > bx[:, 0]) and np.all(bx[:, 3] > bx[:, 1])
  assert np.all(batch['boxes'][~real] == 0)
  if eval_batch:
    assert batch['orig_size'].shape == (b, 2) and batch['orig_size'].dtype == np.int32
    assert batch['example_mask'].shape == (b,) and batch['example_mask'].dtype == bool
    assert batch['image_id'].shape == (b,)
  else:
    assert sorted(batch) == sorted(input_pipeline.TRAIN_KEYS)


def test_voc_mock_train_and_eval():
  problems.reset()
  config = _config('voc')
  with tfds.testing.mock_data(num_examples=6):
    info = input_pipeline.get_dataset_info(config)
    train = input_pipeline.create_train_dataset(config, process_index=0, process_count=1)
    batches = list(tfds.as_numpy(train.take(2)))
    evals = list(tfds.as_numpy(input_pipeline.create_eval_dataset(
        config, process_index=0, process_count=1)))
  assert info.class_names == input_pipeline.VOC_CLASSES
  assert (info.num_train_examples, info.num_eval_examples) == (12, 6)  # 07 + 12; 07 test.
  for b in batches:
    _check_layout(b, 4, 20)
  assert sum(b['example_mask'].sum() for b in evals) == 6  # Every image, once.
  for b in evals:
    _check_layout(b, 4, 20, eval_batch=True)
    assert b['image_id'].dtype == object  # VOC: file stem bytes.
  np.testing.assert_array_equal(evals[-1]['example_mask'], [True, True, False, False])
  # Mock boxes are random and unordered: reordered (and counted), never dropped silently.
  assert problems.COUNTS['reordered_box'] > 0


def test_coco_mock_crowd_and_ids():
  config = _config('coco', max_boxes=64)
  with tfds.testing.mock_data(num_examples=5):
    info = input_pipeline.get_dataset_info(config)
    batch = _first(input_pipeline.create_train_dataset(config, process_index=0,
                                                       process_count=1))
    ev = _first(input_pipeline.create_eval_dataset(config, process_index=0, process_count=1))
  assert len(info.category_ids) == 80 and info.category_ids[:3] == (1, 2, 3)
  assert info.category_ids[-1] == 90 and info.image_id_dtype == 'int64'
  assert ev['image_id'].dtype == np.int64
  global S, M
  s, m = S, M
  try:
    M = 64
    _check_layout(batch, 4, 80)
    _check_layout(ev, 4, 80, eval_batch=True)
  finally:
    S, M = s, m
  real = ev['labels'] > 0
  assert ev['crowd'][real].any()  # Mock data has crowd boxes: kept, but never targets.
  np.testing.assert_array_equal(ev['mask'], real & ~ev['crowd'])


def test_too_many_boxes_are_counted():
  problems.reset()
  config = _config('coco', max_boxes=3)
  with tfds.testing.mock_data(num_examples=2):
    ev = _first(input_pipeline.create_eval_dataset(config, process_index=0, process_count=1))
  assert ev['boxes'].shape == (4, 3, 4)
  assert problems.COUNTS['too_many_boxes'] > 0


def _shapes_config(tmp_path_factory, **kw):
  data_dir = tmp_path_factory.getbasetemp() / 'shapes_tfds'
  return _config('shapes', data_dir=str(data_dir), shapes_num_train=16,
                 shapes_num_validation=10, shapes_seed=3, **kw)


def test_train_is_deterministic_and_start_step_changes_it(tmp_path_factory):
  config = _shapes_config(tmp_path_factory)
  kw = dict(process_index=0, process_count=1)
  a = _first(input_pipeline.create_train_dataset(config, **kw))
  b = _first(input_pipeline.create_train_dataset(config, **kw))
  c = _first(input_pipeline.create_train_dataset(config, start_step=100, **kw))
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a['image'], c['image'])
  _check_layout(a, 4, 8)


def test_augmentation_switches(tmp_path_factory):
  config = _shapes_config(tmp_path_factory)
  for k in ('photometric', 'expand', 'random_crop', 'flip'):
    config.input.augment[k] = False
  assert len(augment.train_ops(config)) == 2  # Resize + normalize only.
  kw = dict(process_index=0, process_count=1)
  batch = _first(input_pipeline.create_train_dataset(config, **kw))
  # Without augmentation the pixels are just the resized image, normalized.
  mean = np.asarray(config.input.mean_rgb)
  assert np.all(batch['image'] + mean >= -1e-3) and np.all(batch['image'] + mean <= 255.01)


def test_process_split(tmp_path_factory):
  config = _shapes_config(tmp_path_factory)
  batches = [_first(input_pipeline.create_train_dataset(config, process_index=i,
                                                        process_count=2)) for i in range(2)]
  assert batches[0]['image'].shape[0] == 2
  assert not np.array_equal(batches[0]['image'], batches[1]['image'])
  with pytest.raises(ValueError, match='divisible'):
    input_pipeline.create_train_dataset(config, process_index=0, process_count=3)
  # Eval: 10 images over 3 processes (4, 3, 3); global batch 12 = 4 per process: one batch
  # each, every image kept once.
  config.input.eval_batch_size = 12
  ids = []
  for i in range(3):
    evals = list(tfds.as_numpy(input_pipeline.create_eval_dataset(
        config, process_index=i, process_count=3)))
    assert len(evals) == 1
    ids += [x for b in evals for x, m in zip(b['image_id'], b['example_mask']) if m]
  assert sorted(ids) == sorted(f'val_{i:06d}'.encode() for i in range(10))


def test_eval_num_images_and_padding(tmp_path_factory):
  config = _shapes_config(tmp_path_factory)
  config.eval.num_images = 5
  evals = list(tfds.as_numpy(input_pipeline.create_eval_dataset(
      config, process_index=0, process_count=1)))
  assert [b['example_mask'].sum() for b in evals] == [4, 1]
  pad = evals[1]
  assert not pad['mask'][1:].any() and (pad['orig_size'][1:] == 0).all()
  assert tuple(pad['orig_size'][0]) == (300, 300)
  # Eval images are resized and normalized only: same input, same output.
  again = list(tfds.as_numpy(input_pipeline.create_eval_dataset(
      config, process_index=0, process_count=1)))
  np.testing.assert_array_equal(evals[0]['image'], again[0]['image'])


def test_get_dataset_info_shapes(tmp_path_factory):
  info = input_pipeline.get_dataset_info(_shapes_config(tmp_path_factory))
  assert info.class_names == shapes.CLASS_NAMES
  assert (info.num_train_examples, info.num_eval_examples) == (16, 10)


def _raw(boxes, name='img.jpg'):
  n = len(boxes)
  return {'boxes': tf.constant(boxes, tf.float32), 'labels': tf.range(1, n + 1),
          'difficult': tf.zeros([n], tf.bool), 'crowd': tf.zeros([n], tf.bool),
          'name': tf.constant(name)}


def test_sanitize_boxes_eagerly_and_in_tf_data():
  boxes = [[0.5, 0.6, 0.1, 0.2],  # Swapped: reordered.
           [0.1, 0.1, 0.1, 0.5],  # Zero height: removed.
           [float('nan'), 0.0, 0.5, 0.5],  # Non-finite: removed.
           [-0.2, 0.3, 0.4, 1.3]]  # Outside: clipped.
  problems.reset()
  eager = input_pipeline.sanitize_boxes(_raw(boxes))
  graph = next(iter(tf.data.Dataset.from_tensors(_raw(boxes)).map(
      input_pipeline.sanitize_boxes)))
  for out in (eager, graph):
    np.testing.assert_allclose(out['boxes'].numpy(),
                               [[0.1, 0.2, 0.5, 0.6], [0.0, 0.3, 0.4, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(out['labels'].numpy(), [1, 4])
  assert problems.COUNTS['reordered_box'] == 2 and problems.COUNTS['degenerate_box'] == 4


def test_pad_boxes():
  ex = _raw([[0.1, 0.1, 0.2, 0.2]] * 3)
  ex['crowd'] = tf.constant([False, True, False])
  out = input_pipeline.pad_boxes(ex, max_boxes=5)
  np.testing.assert_array_equal(out['mask'].numpy(), [True, False, True, False, False])
  np.testing.assert_array_equal(out['labels'].numpy(), [1, 2, 3, 0, 0])
  problems.reset()
  out = input_pipeline.pad_boxes(ex, max_boxes=2)
  np.testing.assert_array_equal(out['labels'].numpy(), [1, 2])
  assert problems.COUNTS['too_many_boxes'] == 1


def test_unknown_dataset():
  with pytest.raises(errors.UserError, match=r"config.input.dataset='imagenet': unknown; one of "
                     r"\['voc', "):
    input_pipeline.get_dataset_info(_config('imagenet'))


def test_coco_category_ids_cover_the_classes():
  assert len(input_pipeline.COCO_CATEGORY_IDS) == len(input_pipeline.COCO_CLASSES) == 80
  assert len(set(input_pipeline.COCO_CATEGORY_IDS)) == 80


def _fail_download(*args, **kwargs):
  raise AssertionError('missing_data must not prepare or download anything')


def test_missing_data_names_the_tfds_set_that_would_be_downloaded(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', _fail_download)
  data_dir = tmp_path / 'tfds'
  config = _config('voc', data_dir=str(data_dir))
  for training in (True, False):
    assert input_pipeline.missing_data(config, training=training) == (
        f'voc/2007 is not prepared in {data_dir}/voc/2007/5.0.0 (tfds would download it; set '
        'config.input.data_dir to where it is)')
  assert 'coco/2017 is not prepared in' in input_pipeline.missing_data(
      _config('coco', data_dir=str(data_dir)))
  # voc/2007 with the metadata tfds writes when it has prepared a data set: evaluation reads
  # it; training also needs voc/2012.
  builder = tfds.builder('voc/2007', data_dir=str(data_dir))
  builder.data_path.mkdir(parents=True)
  builder.info.write_to_directory(builder.data_path)
  assert input_pipeline.missing_data(config, training=False) is None
  assert input_pipeline.missing_data(config).startswith('voc/2012 is not prepared in ')
  assert sorted(p.name for p in data_dir.iterdir()) == ['voc']  # Nothing else written.


def test_missing_data_of_local_sources(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', _fail_download)
  data_dir = tmp_path / 'tfds'
  assert input_pipeline.missing_data(_config('shapes', data_dir=str(data_dir))) is None
  assert not data_dir.exists()  # The shapes set is generated when read, not here.
  assert input_pipeline.missing_data(_config('voc_folder')) == (
      "config.input.folder=None is not a folder (dataset 'voc_folder')")
  assert input_pipeline.missing_data(_config('coco_folder', folder=str(tmp_path))) is None
  with pytest.raises(errors.UserError, match="config.input.dataset='imagenet': unknown"):
    input_pipeline.missing_data(_config('imagenet'))
