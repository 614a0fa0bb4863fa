"""Tests for the local-folder builders (voc_folder, coco_folder) and their bad-input policy."""

import io
import json
import logging
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from absl import logging as absl_logging
from configs import default
from ssd_jax.data import coco_folder
from ssd_jax.data import folder_common
from ssd_jax.data import input_pipeline
from ssd_jax.data import problems
from ssd_jax.data import shapes
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


def write_coco_folder(root, bad=False, extra_images=(), extra_annotations=()):
  """A tiny COCO folder; `extra_*` are appended to the train2017 json as given."""
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
    if split == 'train2017':
      images += list(extra_images)
      anns += list(extra_annotations)
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


def _prepared(kind, folder, data_dir, splits, on_error='skip'):
  """The builder the input pipeline uses (made, cached in-process, prepared)."""
  return input_pipeline._folder_builder(kind, folder, CLASSES, splits, on_error,
                                        str(data_dir))


def _examples(builder, split):
  return {ex['image/filename'].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split))}


def _edit_voc_xml(folder):
  _voc_xml(os.path.join(folder, 'Annotations', '000003.xml'), '000003.jpg', 60, 80,
           [('bird', 0, (30, 10, 70, 50)), ('cat', 0, (1, 1, 20, 20))])


def _replace_voc_image(folder):
  _jpeg(os.path.join(folder, 'JPEGImages', '000003.jpg'), h=45, w=50, seed=7)


@pytest.mark.parametrize('edit', ['voc_xml', 'voc_image', 'coco_json', 'on_error'])
def test_folder_cache_sees_edits(tmp_path, edit):
  data_dir = tmp_path / 'tfds'
  if edit.startswith('voc'):
    folder = write_voc_folder(str(tmp_path / 'VOC2007'))
    before = _examples(_prepared('voc_folder', folder, data_dir, ('test',)), 'test')
    assert before['000003.jpg']['image'].shape == (60, 80, 3)
    np.testing.assert_array_equal(before['000003.jpg']['objects']['label'], [1])
    (_edit_voc_xml if edit == 'voc_xml' else _replace_voc_image)(folder)
    after = _examples(_prepared('voc_folder', folder, data_dir, ('test',)), 'test')
    if edit == 'voc_xml':
      np.testing.assert_array_equal(after['000003.jpg']['objects']['label'], [2, 0])
    else:
      assert after['000003.jpg']['image'].shape == (45, 50, 3)
  elif edit == 'coco_json':
    folder = write_coco_folder(str(tmp_path / 'coco'))
    splits = ('val2017',)
    before = _examples(_prepared('coco_folder', folder, data_dir, splits), 'val2017')
    np.testing.assert_allclose(before['000000000101.jpg']['objects']['bbox'][0],
                               [5 / 50, 7 / 70, 25 / 50, 42 / 70], atol=1e-6)
    path = coco_folder.annotation_path(folder, 'val2017')
    with open(path) as f:
      data = json.load(f)
    data['annotations'][0]['bbox'] = [14.0, 10.0, 7.0, 5.0]
    with open(path, 'w') as f:
      json.dump(data, f)
    after = _examples(_prepared('coco_folder', folder, data_dir, splits), 'val2017')
    np.testing.assert_allclose(after['000000000101.jpg']['objects']['bbox'][0],
                               [10 / 50, 14 / 70, 15 / 50, 21 / 70], atol=1e-6)
  else:
    folder = write_voc_folder(str(tmp_path / 'VOC2012'), bad=True)
    b = _prepared('voc_folder', folder, data_dir, ('trainval',), on_error='skip')
    assert b.info.splits['trainval'].num_examples == 6
    with pytest.raises(folder_common.DataError, match=r'corrupt\.jpg'):
      _prepared('voc_folder', folder, data_dir, ('trainval',), on_error='raise')


def test_folder_summary_is_printed_on_every_run(tmp_path, capsys, monkeypatch):
  folder = write_voc_folder(str(tmp_path / 'VOC2012'), bad=True)
  config = voc_folder.make_config(folder, CLASSES, ('trainval',))
  expected = (f"voc_folder {folder} split 'trainval': 6 images written, 1 without objects; "
              'data problems: bad_image: 2, box_outside_image: 1, degenerate_box: 1, '
              'missing_annotation: 1, unknown_class: 1\n')
  voc_folder.VocFolder(config=config, data_dir=str(tmp_path / 'tfds')).download_and_prepare()
  assert expected in capsys.readouterr().out

  def not_again(*args):
    raise AssertionError(f'prepared again: {args}')

  monkeypatch.setattr(voc_folder.VocFolder, '_generate_examples', not_again)  # Cached run.
  voc_folder.VocFolder(config=config, data_dir=str(tmp_path / 'tfds')).download_and_prepare()
  assert expected in capsys.readouterr().out


ORPHANS = [  # Annotations of no image: a string id where the image's id is the int 100.
    {'id': 92, 'image_id': '100', 'category_id': 1, 'bbox': [1, 1, 5, 5]},
    {'id': 93, 'image_id': 555, 'category_id': 1, 'bbox': [1, 1, 5, 5]},
]


def test_coco_folder_orphan_annotations_are_counted(tmp_path):
  folder = write_coco_folder(str(tmp_path / 'coco'), extra_annotations=ORPHANS)
  b = coco_folder.CocoFolder(config=coco_folder.make_config(folder, ('train2017',)),
                             data_dir=str(tmp_path / 'tfds'))
  b.download_and_prepare()
  assert b.problem_counts['train2017'] == {'orphan_annotation': 2}
  labels = {k: ex['objects']['label'].tolist() for k, ex in _examples(b, 'train2017').items()}
  assert labels == {f'{i:012d}.jpg': [1, 2] for i in (100, 200, 300)}  # Nothing else added.
  b = coco_folder.CocoFolder(config=coco_folder.make_config(folder, ('train2017',), 'raise'),
                             data_dir=str(tmp_path / 'tfds'))
  with pytest.raises(folder_common.DataError,
                     match=r"annotation 92: image_id '100' is not the id of any image \(it is "
                     r'a str; the image id 100 is a int\)'):
    b.download_and_prepare()


def test_coco_folder_duplicate_image_ids_are_named(tmp_path):
  dup = {'id': 200, 'file_name': 'other.jpg', 'height': 50, 'width': 70}
  folder = write_coco_folder(str(tmp_path / 'coco'), extra_images=[dup])
  _jpeg(os.path.join(folder, 'train2017', 'other.jpg'), h=50, w=70)
  b = coco_folder.CocoFolder(config=coco_folder.make_config(folder, ('train2017',)),
                             data_dir=str(tmp_path / 'tfds'))
  with pytest.raises(folder_common.DataError,
                     match=r"images '000000000200\.jpg' and 'other\.jpg' share the id 200"):
    b.download_and_prepare()


def test_making_builders_logs_no_custom_config_warning(tmp_path, capfd):
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  absl_logger = logging.getLogger('absl')
  absl_logger.addHandler(handler)
  try:
    for _ in range(2):
      shapes.make_builder(3, 2, seed=11, data_dir=str(tmp_path))
      voc_folder.VocFolder(config=voc_folder.make_config(str(tmp_path), CLASSES),
                           data_dir=str(tmp_path))
    absl_logging.warning('A real warning: %s', 'kept')
  finally:
    absl_logger.removeHandler(handler)
  assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == [
      'A real warning: kept']
  assert 'custom data configuration' not in capfd.readouterr().err
