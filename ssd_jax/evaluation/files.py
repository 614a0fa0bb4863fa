"""Scoring a detections file against VOC devkit or COCO ground truth (the `evaluate` command).

Detections file: a json list in COCO results format, `{"image_id", "category_id", "bbox",
"score"}` per detection (docs/evaluation.md):
- COCO ground truth: `image_id` and `category_id` are the instances json's integer ids, `bbox`
  is `[x, y, width, height]` in original-image pixels.
- VOC devkit ground truth: `image_id` is the image's file stem (`"000001"`), `category_id` a
  class name (`"dog"`) or a 1-based index into the class list, `bbox` is
  `[xmin, ymin, xmax - xmin, ymax - ymin]` in the devkit's own 1-based pixel coordinates.
"""

import os
from typing import Sequence
from xml.etree import ElementTree

import numpy as np

from ssd_jax import errors
from ssd_jax.classes import VOC_CLASSES
from ssd_jax.evaluation import coco
from ssd_jax.evaluation import devkit
from ssd_jax import file_io
from ssd_jax.evaluation import result as result_lib
from ssd_jax.evaluation import voc

METRICS = ('voc07', 'voc', 'coco')


def read_voc_annotation(path: str, class_names: Sequence[str]):
  """One devkit XML -> (labels [N] 1-based, boxes [N, 4] devkit xyxy, difficult [N])."""
  label_of = {name: i for i, name in enumerate(class_names, start=1)}
  try:
    root = ElementTree.parse(path).getroot()
  except FileNotFoundError:
    raise FileNotFoundError(f'VOC annotation file not found: {path}') from None
  except ElementTree.ParseError as e:
    raise errors.UserError(f'{path}: not valid XML ({e}).') from None
  labels, boxes, difficult = [], [], []
  for obj in root.iter('object'):
    try:
      name = obj.find('name').text.strip()
      box = obj.find('bndbox')
      boxes.append([float(box.find(tag).text) for tag in ('xmin', 'ymin', 'xmax', 'ymax')])
      flag = obj.find('difficult')
      difficult.append(flag is not None and flag.text is not None and int(flag.text) != 0)
    except (AttributeError, TypeError, ValueError):
      raise errors.UserError(f'{path}: an <object> without a <name>, a numeric <bndbox> '
                             'xmin/ymin/xmax/ymax or an integer <difficult>.') from None
    if name not in label_of:
      raise errors.UserError(f'{path}: object class {name!r} is not in the class list '
                             f'{list(class_names)}; pass --class_names to name all classes.')
    labels.append(label_of[name])
  return (np.array(labels, np.int64), np.array(boxes, np.float64).reshape(-1, 4),
          np.array(difficult, bool))


def load_voc_ground_truth(devkit_dir: str, split: str, class_names: Sequence[str]):
  """Reads `<devkit_dir>/ImageSets/Main/<split>.txt` and `Annotations/<id>.xml`.

  Returns (image ids [str], VocGroundTruth); raises FileNotFoundError naming what is missing.
  """
  if not os.path.isdir(devkit_dir):
    raise FileNotFoundError(f'VOC ground truth folder not found: {devkit_dir} (expected a '
                            'devkit year folder such as VOCdevkit/VOC2007).')
  split_file = os.path.join(devkit_dir, 'ImageSets', 'Main', f'{split}.txt')
  if not os.path.isfile(split_file):
    raise FileNotFoundError(f'VOC image set not found: {split_file} (wrong --split?).')
  try:
    with open(split_file, encoding='utf-8') as f:
      image_ids = [line.split()[0] for line in f if line.strip()]
  except UnicodeDecodeError as e:
    raise errors.UserError(f'{split_file}: not UTF-8 text (byte {e.start}).') from None
  parts = [read_voc_annotation(os.path.join(devkit_dir, 'Annotations', f'{i}.xml'), class_names)
           for i in image_ids]
  gt = devkit.VocGroundTruth(
      image=np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts]).astype(np.int64),
      label=np.concatenate([p[0] for p in parts] + [np.zeros(0, np.int64)]),
      boxes=np.concatenate([p[1] for p in parts] + [np.zeros((0, 4))]),
      difficult=np.concatenate([p[2] for p in parts] + [np.zeros(0, bool)]))
  try:
    devkit.check_boxes(gt.boxes, 'ground truth boxes', ids=[image_ids[i] for i in gt.image])
  except ValueError as e:
    raise errors.UserError(f'{devkit_dir}: {e}') from None
  return image_ids, gt


def load_detections(path: str) -> list:
  """The detections json (a list); raises FileNotFoundError / UserError naming the problem."""
  detections = file_io.read_json(path, 'detections file')
  if not isinstance(detections, list):
    raise errors.UserError(f'{path}: expected a JSON list of detections, '
                           f'got {type(detections).__name__}.')
  return detections


def _bad_entry(detections, index, problem):
  return errors.UserError(f'detection {index} ({detections[index]!r:.200}): {problem}')


def voc_detections_from_json(detections: list, image_ids: Sequence[str],
                             class_names: Sequence[str]) -> devkit.VocDetections:
  """COCO-format detection dicts -> VocDetections (devkit xyxy = [x, y, x + w, y + h]).

  Raises UserError naming the first detection with a missing field, an unknown image or class,
  or a bad box or score.
  """
  index_of = {image_id: i for i, image_id in enumerate(image_ids)}
  label_of = {name: i for i, name in enumerate(class_names, start=1)}
  label_of.update({i: i for i in range(1, len(class_names) + 1)})
  try:
    images = [d['image_id'] for d in detections]
    categories = [d['category_id'] for d in detections]
    bboxes = [d['bbox'] for d in detections]
    scores = [d['score'] for d in detections]
  except (KeyError, TypeError):
    i = next(i for i, d in enumerate(detections) if not isinstance(d, dict) or not
             {'image_id', 'category_id', 'bbox', 'score'} <= d.keys())
    raise _bad_entry(detections, i, 'needs image_id, category_id, bbox and score.') from None
  image = np.array([index_of.get(i, -1) if isinstance(i, str) else -1 for i in images], np.int64)
  if (image < 0).any():
    i = int(np.flatnonzero(image < 0)[0])
    raise _bad_entry(detections, i, f'image_id {images[i]!r} is not in the image set '
                     f'({int((image < 0).sum())} detections name unknown images; VOC image '
                     'ids are file stems as strings, e.g. "000001").')
  label = np.array([label_of.get(c, -1) if isinstance(c, (str, int)) and not isinstance(c, bool)
                    else -1 for c in categories], np.int64)
  if (label < 0).any():
    i = int(np.flatnonzero(label < 0)[0])
    raise _bad_entry(detections, i, f'category_id {categories[i]!r} is neither a class name of '
                     f'{list(class_names)} nor an index 1..{len(class_names)}.')
  try:
    # Fast check; np.array would also take the strings "1" and true as numbers.
    ok = {type(s) for s in scores} | {type(v) for b in bboxes for v in b} <= {int, float}
    xywh = np.array(bboxes, np.float64).reshape(len(detections), 4)
    score = np.array(scores, np.float64).reshape(len(detections))
  except (TypeError, ValueError, OverflowError):
    ok = False
  if not ok:
    for i, (bbox, score) in enumerate(zip(bboxes, scores)):
      key = _bad_number_key(bbox, score)
      if key:
        raise _bad_entry(detections, i, f'{key} must be {_NUMBERS[key]} (not strings or '
                         f'booleans), got {bbox if key == "bbox" else score!r:.100}.')
  bad = ~np.isfinite(xywh).all(axis=1) | ~np.isfinite(score)
  if bad.any():
    raise _bad_entry(detections, int(np.flatnonzero(bad)[0]),
                     f'NaN or inf in bbox or score ({int(bad.sum())} such detections).')
  bad = (xywh[:, 2] < 0) | (xywh[:, 3] < 0)
  if bad.any():
    raise _bad_entry(detections, int(np.flatnonzero(bad)[0]),
                     f'negative width or height ({int(bad.sum())} such detections).')
  boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
  return devkit.VocDetections(image=image, label=label, boxes=boxes, scores=score)


_NUMBERS = {'bbox': 'a list of 4 numbers', 'score': 'a number'}


def _bad_number_key(bbox, score) -> str | None:
  """'bbox' unless it is a list of 4 numbers, 'score' unless it is a number (both within the
  float64 range), else None."""
  for key, values, n in (('bbox', bbox, 4), ('score', [score], 1)):
    try:
      ok = (isinstance(values, (list, tuple)) and len(values) == n and
            all(map(file_io.is_number, values)) and np.array(values, np.float64) is not None)
    except OverflowError:  # An int beyond 1.8e308.
      ok = False
    if not ok:
      return key
  return None


def evaluate_files(ground_truth: str, detections: str, metric: str, split: str = 'test',
                   class_names: Sequence[str] | None = None) -> result_lib.EvalResult:
  """Scores a detections json against a VOC devkit year folder or a COCO instances json.

  Args:
    ground_truth: devkit year folder (metrics 'voc07', 'voc') or instances json ('coco').
    detections: detections json path (see the module docstring).
    metric: 'voc07' (11-point AP), 'voc' (VOC2010+ area AP) or 'coco' (COCOeval).
    split: VOC image set, `ImageSets/Main/<split>.txt`.
    class_names: VOC classes in label order; default the 20 VOC classes.
  """
  if metric not in METRICS:
    raise errors.UserError(f'unknown metric {metric!r}; use one of {METRICS}.')
  if metric == 'coco':
    if os.path.isdir(ground_truth):
      raise errors.UserError(f'--metric=coco needs a COCO instances json, got the folder '
                             f'{ground_truth}.')
    coco_gt = coco.load_coco(ground_truth)
    return coco.coco_evaluate(coco_gt, load_detections(detections))
  if os.path.exists(ground_truth) and not os.path.isdir(ground_truth):
    raise errors.UserError(f'--metric={metric} needs a VOC devkit year folder (with Annotations/ '
                           f'and ImageSets/Main/), got the file {ground_truth}.')
  class_names = tuple(class_names or VOC_CLASSES)
  image_ids, gt = load_voc_ground_truth(ground_truth, split, class_names)
  dets = voc_detections_from_json(load_detections(detections), image_ids, class_names)
  return voc.evaluate_voc(gt, dets, class_names, use_07_metric=metric == 'voc07')
