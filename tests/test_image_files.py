"""Image files are read as displayed: EXIF orientation applied, 16-bit scaled to 8 bits; on
every path that reads them (detect, the VOC and COCO folder builders)."""

import json
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ssd_jax import detect
from ssd_jax import image_files
from ssd_jax.data import coco_folder
from ssd_jax.data import voc_folder

tf.config.set_visible_devices([], 'GPU')

# Displayed frame: 160 high, 100 wide; a red box at rows 20..59, columns 60..89 (0-based,
# inclusive), i.e. devkit pixels x 61..90, y 21..60, COCO [60, 20, 30, 40].
HEIGHT, WIDTH = 160, 100
ROWS, COLS = slice(20, 60), slice(60, 90)


def displayed() -> np.ndarray:
  pixels = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
  pixels[ROWS, COLS] = (230, 20, 20)
  return pixels


def rotated_jpeg(path):
  """A JPEG stored 100 high and 160 wide with EXIF orientation 6 (rotate 90 degrees clockwise
  to display), as phones write them; viewers show `displayed()`."""
  stored = Image.fromarray(displayed()).transpose(Image.Transpose.ROTATE_90)
  assert stored.size == (HEIGHT, WIDTH)  # PIL sizes are (width, height).
  exif = Image.Exif()
  exif[image_files.EXIF_ORIENTATION] = 6
  stored.save(path, 'JPEG', quality=95, exif=exif)
  return path


def assert_displayed(pixels):
  """`pixels` [H, W, 3] is `displayed()` up to JPEG loss: red inside the box, grey outside."""
  assert pixels.shape == (HEIGHT, WIDTH, 3)
  inside = pixels[ROWS, COLS][3:-3, 3:-3].reshape(-1, 3).mean(0)
  outside = pixels[80:, :50].reshape(-1, 3).mean(0)
  np.testing.assert_allclose(inside, (230, 20, 20), atol=12)
  np.testing.assert_allclose(outside, (90, 90, 90), atol=6)


def sixteen_bit_png(path):
  """A 16-bit greyscale PNG (a ramp over the whole range) and its 8-bit reading by hand."""
  ramp = np.linspace(0, 65535, 48 * 64).round().astype(np.uint16).reshape(48, 64)
  Image.fromarray(ramp).save(path)
  with Image.open(path) as check:
    assert check.mode == 'I;16'
  return np.floor(ramp / 257 + 0.5).astype(np.uint8)


def test_detect_reads_a_rotated_photo_as_displayed(tmp_path):
  assert_displayed(detect.read_image(rotated_jpeg(str(tmp_path / 'phone.jpg'))))


def test_detect_scales_a_16_bit_png_to_8_bits(tmp_path):
  expected = sixteen_bit_png(str(tmp_path / 'deep.png'))
  pixels = detect.read_image(str(tmp_path / 'deep.png'))
  for channel in range(3):
    np.testing.assert_array_equal(pixels[..., channel], expected)
  assert (pixels == 255).mean() < 0.01  # Not clipped: a ramp has few white pixels.


def test_32_bit_pixels_are_refused_in_one_line(tmp_path):
  Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / 'deep.tif')
  with Image.open(tmp_path / 'deep.tif') as image:
    with pytest.raises(image_files.UnsupportedPixels, match='32-bit integer pixels'):
      image_files.to_rgb8(image)


def _voc(root, stem, image_writer, size, objects):
  for d in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
    os.makedirs(os.path.join(root, d), exist_ok=True)
  name = image_writer(os.path.join(root, 'JPEGImages', stem))
  objs = ''.join(f'<object><name>cat</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>'
                 f'<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>'
                 for x0, y0, x1, y1 in objects)
  with open(os.path.join(root, 'Annotations', f'{stem}.xml'), 'w') as f:
    f.write(f'<annotation><filename>{os.path.basename(name)}</filename><size><width>{size[1]}'
            f'</width><height>{size[0]}</height></size>{objs}</annotation>')
  with open(os.path.join(root, 'ImageSets', 'Main', 'trainval.txt'), 'a') as f:
    f.write(stem + '\n')


def test_voc_folder_reads_a_rotated_photo_as_displayed(tmp_path):
  root = str(tmp_path / 'VOC')
  # The annotation, as any labelling tool writes it, is in the displayed frame.
  _voc(root, 'phone', lambda p: rotated_jpeg(p + '.jpg'), (HEIGHT, WIDTH), [(61, 21, 90, 60)])
  builder = voc_folder.VocFolder(config=voc_folder.make_config(root, ('cat',), ('trainval',)),
                                 data_dir=str(tmp_path / 'tfds'))
  builder.download_and_prepare()
  assert builder.problem_counts['trainval'] == {}  # No size_mismatch: sizes agree.
  (example,) = tfds.as_numpy(builder.as_dataset('trainval'))
  assert_displayed(example['image'])
  np.testing.assert_allclose(example['objects']['bbox'],
                             [[20 / HEIGHT, 60 / WIDTH, 59 / HEIGHT, 89 / WIDTH]], atol=1e-6)


def test_voc_folder_scales_a_16_bit_png(tmp_path):
  root = str(tmp_path / 'VOC')
  expected = {}

  def write(path):
    expected['pixels'] = sixteen_bit_png(path + '.png')
    return path + '.png'

  _voc(root, 'deep', write, (48, 64), [(1, 1, 20, 20)])
  builder = voc_folder.VocFolder(config=voc_folder.make_config(root, ('cat',), ('trainval',)),
                                 data_dir=str(tmp_path / 'tfds'))
  builder.download_and_prepare()
  (example,) = tfds.as_numpy(builder.as_dataset('trainval'))
  # Re-encoded as JPEG (quality 95): close to the hand-scaled ramp, not clipped to white.
  error = np.abs(example['image'][..., 0].astype(float) - expected['pixels'])
  assert error.mean() < 2 and (example['image'] >= 250).mean() < 0.05


def test_coco_folder_reads_a_rotated_photo_as_displayed(tmp_path):
  root = tmp_path / 'coco'
  (root / 'train').mkdir(parents=True)
  (root / 'annotations').mkdir()
  rotated_jpeg(str(root / 'train' / 'phone.jpg'))
  with open(coco_folder.annotation_path(str(root), 'train'), 'w') as f:
    json.dump({'images': [{'id': 1, 'file_name': 'phone.jpg', 'height': HEIGHT,
                           'width': WIDTH}],
               'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1,
                                'bbox': [60, 20, 30, 40], 'iscrowd': 0}],
               'categories': [{'id': 1, 'name': 'cat'}]}, f)
  builder = coco_folder.CocoFolder(config=coco_folder.make_config(str(root), ('train',)),
                                   data_dir=str(tmp_path / 'tfds'))
  builder.download_and_prepare()
  assert builder.problem_counts['train'] == {}
  (example,) = tfds.as_numpy(builder.as_dataset('train'))
  assert_displayed(example['image'])
  np.testing.assert_allclose(example['objects']['bbox'],
                             [[20 / HEIGHT, 60 / WIDTH, 60 / HEIGHT, 90 / WIDTH]], atol=1e-6)
