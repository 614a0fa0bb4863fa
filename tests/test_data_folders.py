"""Tests for the local-folder builders (voc_folder, coco_folder) and their bad-input policy."""

import io
import json
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import default
from ssd_jax.data import coco_folder
from ssd_jax.data import folder_common
from ssd_jax.data import input_pipeline
from ssd_jax.data import problems
from ssd_jax.data import voc_folder

tf.config.set_visible_devices([], 'GPU')

CLASSES = ('cat', 'dog', 'bird')


def _jpeg(path, h=60, w=80, seed=0):
  rng = np.random.default_rng(seed)
  Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, 'JPEG')


def _voc_xml(path, filename, h, w, objects):
  objs = ''.join(
      f'<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{x0}</xmin>'
      f'<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>'
      for n, d, (x0, y0, x1, y1) in objects)
  with open(path, 'w') as f:
    f.write(f'<annotation><filename>{filename}</filename><size><width>{w}</width>'
            f'<height>{h}</height><depth>3</depth></size>{objs}</annotation>')


def write_voc_folder(root, bad=False):
  """A tiny VOC20xx folder; with bad=True, one image of each kind of bad input."""
  for d in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
    os.makedirs(os.path.join(root, d), exist_ok=True)
  good = {
      '000001': [('cat', 0, (11, 21, 41, 51)), ('dog', 1, (1, 1, 80, 60))],
      '000002': [('bird', 0, (5, 5, 20, 30))],
      '000003': [('dog', 0, (30, 10, 70, 50))],
  }
  for i, (stem, objs) in enumerate(good.items()):
    _jpeg(os.path.join(root, 'JPEGImages', stem + '.jpg'), seed=i)
    _voc_xml(os.path.join(root, 'Annotations', stem + '.xml'), stem + '.jpg', 60, 80, objs)
  train, test = ['000001', '000002'], ['000003']
  if bad:
    cases = {
        'corrupt': [('cat', 0, (1, 1, 10, 10))],
        'truncated': [('cat', 0, (1, 1, 10, 10))],
        'noxml': None,
        'degenerate': [('cat', 0, (30, 10, 20, 50)), ('dog', 0, (1, 1, 10, 10))],
        'outside': [('cat', 0, (-20, 5, 200, 50))],
        'empty': [],
        'unknown': [('zebra', 0, (1, 1, 10, 10)), ('bird', 0, (2, 2, 30, 30))],
    }
    for i, (stem, objs) in enumerate(cases.items()):
      jpg = os.path.join(root, 'JPEGImages', stem + '.jpg')
      _jpeg(jpg, seed=10 + i)
      if objs is not None:
        _voc_xml(os.path.join(root, 'Annotations', stem + '.xml'), stem + '.jpg', 60, 80, objs)
    with open(os.path.join(root, 'JPEGImages', 'corrupt.jpg'), 'wb') as f:
      f.write(b'\xff\xd8\xff\xe0 this is not a jpeg' * 10)
    with open(os.path.join(root, 'JPEGImages', 'truncated.jpg'), 'rb') as f:
      data = f.read()
    with open(os.path.join(root, 'JPEGImages', 'truncated.jpg'), 'wb') as f:
      f.write(data[:len(data) // 2])
    train += list(cases)
  for split, ids in (('trainval', train), ('test', test), ('empty', [])):
    with open(os.path.join(root, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
      f.write(''.join(i + '\n' for i in ids))
  return root


def write_coco_folder(root, bad=False):
  cats = [{'id': 3, 'name': 'car'}, {'id': 1, 'name': 'person'}, {'id': 7, 'name': 'train'}]
  for split, n in (('train2017', 3), ('val2017', 2)):
    os.makedirs(os.path.join(root, split), exist_ok=True)
    images, anns = [], []
    for i in range(n):
      iid = 100 * (i + 1) + (split == 'val2017')
      name = f'{iid:012d}.jpg'
      _jpeg(os.path.join(root, split, name), h=50, w=70, seed=iid)
      images.append({'id': iid, 'file_name': name, 'height': 50, 'width': 70})
      anns.append({'id': len(anns) + 1, 'image_id': iid, 'category_id': 3,
                   'bbox': [7.0, 5.0, 35.0, 20.0], 'iscrowd': 0})
      anns.append({'id': len(anns) + 1, 'image_id': iid, 'category_id': 7,
                   'bbox': [0.0, 0.0, 70.0, 50.0], 'iscrowd': 1})
    if bad and split == 'train2017':
      images.append({'id': 900, 'file_name': 'missing.jpg', 'height': 50, 'width': 70})
      anns.append({'id': 90, 'image_id': 100, 'category_id': 42, 'bbox': [1, 1, 5, 5]})
      anns.append({'id': 91, 'image_id': 100, 'category_id': 1, 'bbox': [10, 10, 0, 5]})
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    with open(coco_folder.annotation_path(root, split), 'w') as f:
      json.dump({'images': images, 'annotations': anns, 'categories': cats}, f)
  return root


def _config(dataset, folder, data_dir, **kw):
  config = default.get_config()
  config.input.dataset = dataset
  config.input.folder = str(folder)
  config.input.data_dir = str(data_dir)
  config.input.class_names = CLASSES
  config.model.num_classes = len(CLASSES)
  config.model.input_size = 64
  config.input.batch_size = 2
  config.input.eval_batch_size = 2
  config.input.max_boxes = 8
  config.input.shuffle_buffer = 4
  for k, v in kw.items():
    config.input[k] = v
  return config


def test_voc_folder_builder_reads_boxes_like_tfds_voc(tmp_path):
  folder = write_voc_folder(str(tmp_path / 'VOC2007'))
  b = voc_folder.VocFolder(config=voc_folder.make_config(folder, CLASSES),
                           data_dir=str(tmp_path / 'tfds'))
  b.download_and_prepare()
  assert b.info.splits['trainval'].num_examples == 2
  examples = {ex['image/filename']: ex for ex in tfds.as_numpy(b.as_dataset('trainval'))}
  ex = examples[b'000001.jpg']
  # devkit pixel x (1-based) -> (x - 1) / width.
  np.testing.assert_allclose(ex['objects']['bbox'][0],
                             [20 / 60, 10 / 80, 50 / 60, 40 / 80], atol=1e-6)
  np.testing.assert_array_equal(ex['objects']['label'], [0, 1])
  np.testing.assert_array_equal(ex['objects']['is_difficult'], [False, True])
  assert ex['image'].shape == (60, 80, 3)


def test_voc_folder_pipeline(tmp_path):
  folder = write_voc_folder(str(tmp_path / 'VOC2007'))
  config = _config('voc_folder', folder, tmp_path / 'tfds')
  info = input_pipeline.get_dataset_info(config)
  assert info.class_names == CLASSES and info.folder == folder
  assert (info.num_train_examples, info.num_eval_examples) == (2, 1)
  assert (info.train_split, info.eval_split) == ('trainval', 'test')
  batch = next(iter(tfds.as_numpy(input_pipeline.create_train_dataset(
      config, process_index=0, process_count=1))))
  assert batch['image'].shape == (2, 64, 64, 3) and batch['boxes'].shape == (2, 8, 4)
  (ev,) = list(tfds.as_numpy(input_pipeline.create_eval_dataset(
      config, process_index=0, process_count=1)))
  np.testing.assert_array_equal(ev['example_mask'], [True, False])
  assert ev['image_id'][0] == b'000003' and tuple(ev['orig_size'][0]) == (60, 80)
  np.testing.assert_array_equal(ev['labels'][0, :2], [2, 0])


def test_voc_folder_bad_input_is_skipped_and_counted(tmp_path):
  folder = write_voc_folder(str(tmp_path / 'VOC2012'), bad=True)
  problems.reset()
  b = voc_folder.VocFolder(config=voc_folder.make_config(folder, CLASSES, ('trainval',)),
                           data_dir=str(tmp_path / 'tfds'))
  b.download_and_prepare()
  counts = b.problem_counts['trainval']
  assert counts == {'bad_image': 2, 'missing_annotation': 1, 'degenerate_box': 1,
                    'box_outside_image': 1, 'unknown_class': 1}
  assert problems.COUNTS['bad_image'] == 2  # Also in the process-wide counters.
  examples = {ex['image/filename'].decode(): ex for ex in tfds.as_numpy(
      b.as_dataset('trainval'))}
  # 2 good + degenerate, outside, empty, unknown (each kept with its good objects).
  assert sorted(examples) == ['000001.jpg', '000002.jpg', 'degenerate.jpg', 'empty.jpg',
                              'outside.jpg', 'unknown.jpg']
  assert len(examples['empty.jpg']['objects']['label']) == 0
  np.testing.assert_array_equal(examples['unknown.jpg']['objects']['label'], [2])
  np.testing.assert_array_equal(examples['degenerate.jpg']['objects']['label'], [1])
  np.testing.assert_allclose(examples['outside.jpg']['objects']['bbox'][0, [1, 3]], [0, 1])


@pytest.mark.parametrize('case, message', [
    ('trainval', r'corrupt\.jpg: corrupt or truncated'),  # on_error='raise': first bad file.
    ('empty', r"split 'empty' is empty"),
    ('missing', r'ImageSets/Main/missing\.txt does not exist'),
])
def test_voc_folder_errors_name_the_file(tmp_path, case, message):
  folder = write_voc_folder(str(tmp_path / 'VOC2012'), bad=True)
  on_error = 'raise' if case == 'trainval' else 'skip'
  b = voc_folder.VocFolder(config=voc_folder.make_config(folder, CLASSES, (case,), on_error),
                           data_dir=str(tmp_path / 'tfds'))
  with pytest.raises(folder_common.DataError, match=message):
    b.download_and_prepare()


def test_coco_folder_builder_and_pipeline(tmp_path):
  folder = write_coco_folder(str(tmp_path / 'coco'))
  config = _config('coco_folder', folder, tmp_path / 'tfds')
  info = input_pipeline.get_dataset_info(config)
  assert info.class_names == ('person', 'car', 'train')
  assert info.category_ids == (1, 3, 7)
  assert (info.num_train_examples, info.num_eval_examples) == (3, 2)
  assert info.image_id_dtype == 'int64'
  (ev,) = list(tfds.as_numpy(input_pipeline.create_eval_dataset(
      config, process_index=0, process_count=1)))
  assert sorted(ev['image_id'].tolist()) == [101, 201]
  np.testing.assert_array_equal(ev['labels'][:, :2], [[2, 3], [2, 3]])  # car, train
  np.testing.assert_array_equal(ev['crowd'][:, :2], [[False, True]] * 2)
  np.testing.assert_array_equal(ev['mask'][:, :3], [[True, False, False]] * 2)
  # bbox [x, y, w, h] = [7, 5, 35, 20] on 70x50 -> yxyx normalized.
  np.testing.assert_allclose(ev['boxes'][0, 0], [5 / 50, 7 / 70, 25 / 50, 42 / 70], atol=1e-6)
  batch = next(iter(tfds.as_numpy(input_pipeline.create_train_dataset(
      config, process_index=0, process_count=1))))
  assert not np.any(batch['mask'] & batch['crowd'])


def test_coco_folder_bad_input(tmp_path):
  folder = write_coco_folder(str(tmp_path / 'coco'), bad=True)
  b = coco_folder.CocoFolder(config=coco_folder.make_config(folder, ('train2017',)),
                             data_dir=str(tmp_path / 'tfds'))
  b.download_and_prepare()
  assert b.problem_counts['train2017'] == {'missing_image': 1, 'unknown_class': 1,
                                           'degenerate_box': 1}
  assert b.info.splits['train2017'].num_examples == 3
  with pytest.raises(folder_common.DataError, match='does not exist'):
    coco_folder.make_config(folder, ('train2017', 'nosuchsplit'))


def test_folder_dataset_needs_a_folder():
  config = default.get_config()
  config.input.dataset = 'voc_folder'
  with pytest.raises(ValueError, match='config.input.folder'):
    input_pipeline.get_dataset_info(config)
