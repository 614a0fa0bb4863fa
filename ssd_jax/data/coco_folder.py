"""`coco_folder`: a tfds builder reading a COCO-style folder.

Layout (as COCO 2017): `<folder>/annotations/instances_<split>.json` and the images in
`<folder>/<split>/<file_name>`. The builder config name hashes the folder path, splits,
classes, `on_error`, and the names, sizes and modification times of the jsons and of every
file in the split folders (editing any of them prepares the data again). Classes are the
json's categories sorted by id: label i (1-based) is category `category_ids[i - 1]`. Boxes
`[x, y, w, h]` in pixels become normalized yxyx. `iscrowd` is kept as `is_crowd` (never a
training target).
Bad input policy (`on_error='skip'`, the default): see docs/data.md.
"""

import collections
import json
import os

from etils import epath
import numpy as np

from ssd_jax.data import folder_common

FolderConfig = folder_common.FolderConfig


def annotation_path(folder, split):
  return os.path.join(folder, 'annotations', f'instances_{split}.json')


def read_categories(json_path):
  """(class_names, category_ids) of a COCO json, sorted by category id."""
  if not os.path.exists(json_path):
    raise folder_common.DataError(f'coco_folder: annotation file {json_path} does not exist')
  with open(json_path) as f:
    try:
      cats = json.load(f).get('categories') or []
    except json.JSONDecodeError as e:
      raise folder_common.DataError(f'coco_folder: cannot parse {json_path}: {e}') from e
  if not cats:
    raise folder_common.DataError(f'coco_folder: {json_path} has no categories')
  cats = sorted(cats, key=lambda c: c['id'])
  return tuple(c['name'] for c in cats), tuple(int(c['id']) for c in cats)


def make_config(folder, splits=('train2017', 'val2017'), on_error='skip'):
  """Classes come from the last split's json (the small val json for COCO 2017)."""
  jsons = [annotation_path(folder, s) for s in splits]
  class_names, category_ids = read_categories(jsons[-1])
  image_folders = [os.path.join(folder, s) for s in splits]
  name = folder_common.config_name(folder, class_names, splits, on_error,
                                   jsons + image_folders)
  return FolderConfig(name=name, folder=os.fspath(folder), class_names=class_names,
                      category_ids=category_ids, splits=tuple(splits), on_error=on_error)


def _unique_images(json_path, images):
  """{id: image info}; DataError naming the id and both files if two images share an id
  (their annotations could belong to either)."""
  by_id = {}
  for info in images:
    other = by_id.setdefault(info['id'], info)
    if other is not info:
      raise folder_common.DataError(
          f'coco_folder: {json_path}: images {other.get("file_name")!r} and '
          f'{info.get("file_name")!r} share the id {info["id"]!r}; image ids must be unique')
  return by_id


def _annotations_by_image(json_path, annotations, images, report):
  """{image id: [annotation]}; an annotation whose image_id is no image's id is reported
  ('orphan_annotation') and dropped."""
  same_text = {str(i): i for i in images}
  anns = collections.defaultdict(list)
  for a in annotations:
    image_id = a.get('image_id')
    if image_id in images:
      anns[image_id].append(a)
      continue
    hint = ''
    if str(image_id) in same_text:
      twin = same_text[str(image_id)]
      hint = (f' (it is a {type(image_id).__name__}; the image id {twin!r} is a '
              f'{type(twin).__name__})')
    report('orphan_annotation', f'{json_path} annotation {a.get("id")!r}: image_id '
           f'{image_id!r} is not the id of any image{hint}; annotation dropped')
  return anns


class CocoFolder(folder_common.FolderBuilder):
  """A local COCO-format folder."""

  FORMAT = 'COCO'
  code_path = epath.Path(__file__)

  def _split_generators(self, dl_manager):
    del dl_manager
    c = self.builder_config
    return {s: self._generate_examples(s) for s in c.splits}

  def _generate_examples(self, split):
    c = self.builder_config
    report = self._new_report(split)
    json_path = annotation_path(c.folder, split)
    names, ids = read_categories(json_path)
    if ids != tuple(c.category_ids):
      raise folder_common.DataError(
          f'coco_folder: categories of {json_path} differ from the other split ({names} vs '
          f'{c.class_names})')
    label_of = {cid: i for i, cid in enumerate(ids)}
    with open(json_path) as f:
      data = json.load(f)
    images = _unique_images(json_path, data.get('images', []))
    anns = _annotations_by_image(json_path, data.get('annotations', []), images, report)
    num_written = num_empty = 0
    for image_id in sorted(images):
      info = images[image_id]
      example = self._example(split, info, anns.get(image_id, []), label_of, report)
      if example is None:
        continue
      num_written += 1
      num_empty += len(example['objects']['label']) == 0
      yield image_id, example
    self._finish_split(split, num_written, num_empty, report)

  def _example(self, split, info, anns, label_of, report):
    c = self.builder_config
    image_dir = os.path.join(c.folder, split)
    path = os.path.join(image_dir, info['file_name'])
    if not folder_common.check_inside(path, image_dir, f'image {info["id"]!r}', report):
      return None
    image = folder_common.read_image(path, report)
    if image is None:
      return None
    data, (height, width) = image
    if (info.get('height'), info.get('width')) != (height, width):
      report('size_mismatch', f'{path}: json size {(info.get("height"), info.get("width"))} '
             f'differs from the image {(height, width)}; using the image size',
             fatal_if_raise=False)
    boxes, labels, crowd = [], [], []
    for a in sorted(anns, key=lambda a: a.get('id', 0)):
      where = f'{path} annotation {a.get("id")}'
      cid = a.get('category_id')
      if cid not in label_of:
        report('unknown_class', f'{where}: category id {cid} not in the categories; '
               'object dropped')
        continue
      try:
        x, y, w, h = (float(v) for v in a['bbox'])
      except (KeyError, TypeError, ValueError):
        report('bad_box', f'{where}: missing or non-numeric bbox; object dropped')
        continue
      box = folder_common.clip_box((y / height, x / width, (y + h) / height, (x + w) / width),
                                   where, report)
      if box is None:
        continue
      boxes.append(box)
      labels.append(label_of[cid])
      crowd.append(bool(a.get('iscrowd', 0)))
    return {
        'image': data,
        'image/filename': info['file_name'],
        'image/id': int(info['id']),
        'objects': {
            'bbox': np.asarray(boxes, np.float32).reshape(-1, 4),
            'label': np.asarray(labels, np.int64),
            'is_difficult': np.zeros(len(labels), bool),
            'is_crowd': np.asarray(crowd, bool),
        },
    }
