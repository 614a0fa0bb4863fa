"""Which file a folder builder reads: the VOC annotation file's name is the image id, and no
path leaves the data folder (`../`, absolute, or a symlink to a file elsewhere)."""

import os
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from ssd_jax.data import coco_folder
from ssd_jax.data import folder_common
from ssd_jax.data import voc_folder
from tests import test_data_folders
from tests.test_data_folders import CLASSES


def _build(builder_class, config, data_dir):
  builder = builder_class(config=config, data_dir=str(data_dir))
  builder.download_and_prepare()
  return builder


def _examples(builder, split):
  return {ex['image/filename'].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split))}


def _pixels(path):
  with Image.open(path) as image:
    return np.asarray(image.convert('RGB'), np.float64)


def _set_filename(folder, stem, filename):
  path = os.path.join(folder, 'Annotations', f'{stem}.xml')
  with open(path) as f:
    text = f.read()
  with open(path, 'w') as f:
    f.write(text.replace(f'<filename>{stem}.jpg</filename>', f'<filename>{filename}</filename>'))


def test_voc_filename_naming_another_image_is_counted_and_not_used(tmp_path):
  folder = test_data_folders.write_voc_folder(str(tmp_path / 'VOC2007'))
  _set_filename(folder, '000002', '000001.jpg')  # Copied from another annotation.
  builder = _build(voc_folder.VocFolder, voc_folder.make_config(folder, CLASSES, ('trainval',)),
                   tmp_path / 'tfds')
  assert builder.problem_counts['trainval'] == {'filename_mismatch': 1}
  examples = _examples(builder, 'trainval')
  assert sorted(examples) == ['000001.jpg', '000002.jpg']  # 000001 is not read twice.
  own = _pixels(os.path.join(folder, 'JPEGImages', '000002.jpg'))
  assert np.abs(examples['000002.jpg']['image'] - own).mean() < 1  # Its own image.
  with pytest.raises(folder_common.DataError, match=r"\[filename_mismatch\] .*000002\.xml: "
                                                    r"<filename> '000001\.jpg' is not image"):
    _build(voc_folder.VocFolder,
           voc_folder.make_config(folder, CLASSES, ('trainval',), on_error='raise'),
           tmp_path / 'tfds_raise')


def test_voc_filename_with_the_same_id_and_another_extension_is_read(tmp_path):
  folder = test_data_folders.write_voc_folder(str(tmp_path / 'VOC2007'))
  jpg = os.path.join(folder, 'JPEGImages', '000002.jpg')
  with Image.open(jpg) as image:
    image.save(jpg[:-4] + '.png')
  os.remove(jpg)
  _set_filename(folder, '000002', '000002.png')
  builder = _build(voc_folder.VocFolder, voc_folder.make_config(folder, CLASSES, ('trainval',)),
                   tmp_path / 'tfds')
  assert builder.problem_counts['trainval'] == {}
  assert sorted(_examples(builder, 'trainval')) == ['000001.jpg', '000002.png']


def test_voc_paths_outside_the_folder_are_refused(tmp_path):
  folder = test_data_folders.write_voc_folder(str(tmp_path / 'data' / 'VOC2007'))
  outside = tmp_path / 'outside.jpg'
  shutil.copy(os.path.join(folder, 'JPEGImages', '000003.jpg'), outside)
  shutil.copy(os.path.join(folder, 'Annotations', '000003.xml'), tmp_path / 'outside.xml')
  _set_filename(folder, '000001', '../../../outside.jpg')  # Read as 000001.jpg.
  os.remove(os.path.join(folder, 'JPEGImages', '000002.jpg'))
  os.symlink(outside, os.path.join(folder, 'JPEGImages', '000002.jpg'))
  with open(os.path.join(folder, 'ImageSets', 'Main', 'trainval.txt'), 'a') as f:
    f.write('../../../outside\n000003\n')
  builder = _build(voc_folder.VocFolder, voc_folder.make_config(folder, CLASSES, ('trainval',)),
                   tmp_path / 'tfds')
  assert builder.problem_counts['trainval'] == {'filename_mismatch': 1, 'path_outside_folder': 2}
  assert sorted(_examples(builder, 'trainval')) == ['000001.jpg', '000003.jpg']


def test_voc_folder_whose_image_folder_is_a_link_is_read(tmp_path):
  folder = test_data_folders.write_voc_folder(str(tmp_path / 'VOC2007'))
  shutil.move(os.path.join(folder, 'JPEGImages'), tmp_path / 'images')
  os.symlink(tmp_path / 'images', os.path.join(folder, 'JPEGImages'))
  builder = _build(voc_folder.VocFolder, voc_folder.make_config(folder, CLASSES, ('trainval',)),
                   tmp_path / 'tfds')
  assert builder.problem_counts['trainval'] == {}
  assert sorted(_examples(builder, 'trainval')) == ['000001.jpg', '000002.jpg']


def test_coco_paths_outside_the_folder_are_refused(tmp_path):
  outside = tmp_path / 'outside.jpg'
  test_data_folders._jpeg(outside, h=50, w=70)  # pylint: disable=protected-access
  root = tmp_path / 'data' / 'coco'
  (root / 'train2017').mkdir(parents=True)
  os.symlink(outside, root / 'train2017' / 'link.jpg')
  extra = [{'id': 900 + i, 'file_name': name, 'height': 50, 'width': 70}
           for i, name in enumerate(['../../../outside.jpg', str(outside), 'link.jpg'])]
  folder = test_data_folders.write_coco_folder(str(root), extra_images=extra)
  builder = _build(coco_folder.CocoFolder, coco_folder.make_config(folder, ('train2017',)),
                   tmp_path / 'tfds')
  assert builder.problem_counts['train2017'] == {'path_outside_folder': 3}
  assert builder.info.splits['train2017'].num_examples == 3  # The folder's own three.
  with pytest.raises(folder_common.DataError, match=r"\[path_outside_folder\] image 900: "):
    _build(coco_folder.CocoFolder,
           coco_folder.make_config(folder, ('train2017',), on_error='raise'), tmp_path / 't2')
