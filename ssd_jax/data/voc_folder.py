"""`voc_folder`: a tfds builder reading an existing `VOCdevkit/VOC20xx` folder.

Layout: `<folder>/JPEGImages/<id>.jpg`, `<folder>/Annotations/<id>.xml`,
`<folder>/ImageSets/Main/<split>.txt` (one id per line). Any class list. Nothing is
downloaded; `download_and_prepare` copies the folder into tfds records once (the builder
config name hashes the folder path, class list, splits, `on_error`, and the names, sizes
and modification times of the split files and of every file in `Annotations/` and
`JPEGImages/`, so editing any of them prepares the data again).

Box convention as tfds `voc`: devkit pixel x (1-based) -> (x - 1) / width.
Bad input policy (`on_error='skip'`, the default): see docs/data.md.
"""

import os
import xml.etree.ElementTree as ET

from etils import epath
import numpy as np

from ssd_jax.data import folder_common

FolderConfig = folder_common.FolderConfig


def make_config(folder, class_names, splits=('trainval', 'test'), on_error='skip'):
  watched = [os.path.join(folder, 'ImageSets', 'Main', f'{s}.txt') for s in splits]
  watched += [os.path.join(folder, 'Annotations'), os.path.join(folder, 'JPEGImages')]
  name = folder_common.config_name(folder, class_names, splits, on_error, watched)
  return FolderConfig(name=name, folder=os.fspath(folder), class_names=tuple(class_names),
                      splits=tuple(splits), on_error=on_error)


def _text(node, tag, default=None):
  child = node.find(tag)
  return default if child is None or child.text is None else child.text.strip()


def image_file_name(image_id, filename, xml_path, report):
  """The image file of annotation `<image_id>.xml`: the annotation file's name is the image
  id (as in the devkit), so the image is `<image_id>.jpg`, or `<filename>` when that is the
  same id with another extension (`<image_id>.png`). A `<filename>` naming another file
  (another image, a folder, `../`) is reported as 'filename_mismatch' (under on_error='skip'
  `<image_id>.jpg` is read; another image is never used)."""
  default = f'{image_id}.jpg'
  if not filename or filename == default:
    return default
  stem, ext = os.path.splitext(filename)
  if stem == image_id and ext and '/' not in filename and '\\' not in filename:
    return filename
  report('filename_mismatch', f'{xml_path}: <filename> {filename!r} is not image '
         f'{image_id!r} (the annotation file\'s name is its image id); reading {default}')
  return default


class VocFolder(folder_common.FolderBuilder):
  """A local VOC-format folder."""

  FORMAT = 'VOC'
  code_path = epath.Path(__file__)

  def _split_generators(self, dl_manager):
    del dl_manager
    c = self.builder_config
    out = {}
    for split in c.splits:
      path = os.path.join(c.folder, 'ImageSets', 'Main', f'{split}.txt')
      if not os.path.exists(path):
        raise folder_common.DataError(f'voc_folder: split file {path} does not exist')
      out[split] = self._generate_examples(split, path)
    return out

  def _generate_examples(self, split, split_file):
    c = self.builder_config
    report = self._new_report(split)
    class_index = {n: i for i, n in enumerate(c.class_names)}
    with open(split_file) as f:
      ids = [line.split()[0] for line in f if line.strip()]
    num_written = num_empty = 0
    for index, image_id in enumerate(ids):
      example = self._example(image_id, index, class_index, report)
      if example is None:
        continue
      num_written += 1
      num_empty += len(example['objects']['label']) == 0
      yield image_id, example
    self._finish_split(split, num_written, num_empty, report)

  def _example(self, image_id, index, class_index, report):
    c = self.builder_config
    xml_dir, image_dir = (os.path.join(c.folder, d) for d in ('Annotations', 'JPEGImages'))
    xml_path = os.path.join(xml_dir, f'{image_id}.xml')
    if not folder_common.check_inside(xml_path, xml_dir, f'image id {image_id!r}', report):
      return None
    if not os.path.exists(xml_path):
      report('missing_annotation', f'{xml_path}: annotation file missing; image skipped')
      return None
    try:
      root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
      report('bad_annotation', f'{xml_path}: cannot parse XML ({e}); image skipped')
      return None
    jpg = os.path.join(image_dir, image_file_name(image_id, _text(root, 'filename'), xml_path,
                                                  report))
    if not os.path.exists(jpg):
      jpg = os.path.join(image_dir, f'{image_id}.jpg')
    if not folder_common.check_inside(jpg, image_dir, xml_path, report):
      return None
    image = folder_common.read_image(jpg, report)
    if image is None:
      return None
    data, (height, width) = image
    size = root.find('size')
    if size is not None:
      try:
        xml_hw = (int(float(_text(size, 'height'))), int(float(_text(size, 'width'))))
      except (TypeError, ValueError):
        xml_hw = None
      if xml_hw != (height, width):
        report('size_mismatch', f'{xml_path}: <size> {xml_hw} differs from the image '
               f'{(height, width)}; using the image size', fatal_if_raise=False)
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.findall('object')):
      name = (_text(obj, 'name') or '').strip()
      where = f'{xml_path} object {k} ({name!r})'
      if name not in class_index:
        report('unknown_class', f'{where}: class not in the class list; object dropped')
        continue
      bb = obj.find('bndbox')
      try:
        x0, y0, x1, y1 = (float(_text(bb, t)) for t in ('xmin', 'ymin', 'xmax', 'ymax'))
      except (AttributeError, TypeError, ValueError):
        report('bad_box', f'{where}: missing or non-numeric bndbox; object dropped')
        continue
      box = folder_common.clip_box(
          ((y0 - 1) / height, (x0 - 1) / width, (y1 - 1) / height, (x1 - 1) / width), where,
          report)
      if box is None:
        continue
      boxes.append(box)
      labels.append(class_index[name])
      difficult.append(_text(obj, 'difficult', '0') == '1')
    return {
        'image': data,
        'image/filename': os.path.basename(jpg),
        'image/id': index,
        'objects': {
            'bbox': np.asarray(boxes, np.float32).reshape(-1, 4),
            'label': np.asarray(labels, np.int64),
            'is_difficult': np.asarray(difficult, bool),
            'is_crowd': np.zeros(len(labels), bool),
        },
    }
