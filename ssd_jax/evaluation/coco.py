"""COCO detection metrics through pycocotools' COCOeval (not reimplemented here).

`coco_evaluate(coco_gt, results)` scores COCO results-format detections (`image_id`,
`category_id`, `bbox` = [x, y, width, height] in original-image pixels, `score`) against a
`pycocotools.coco.COCO` ground truth with `COCOeval(gt, dt, 'bbox')`: `evaluate()`,
`accumulate()`, `summarize()`; the 12 `stats` become the metrics `AP` .. `ARl`.

`CocoEvaluator` accumulates the project's batches. Without an instances json it builds the
ground truth from the batches: every box with `labels > 0` and `mask | crowd`, its `iscrowd`
flag, and `area` = box width * height in pixels. The official annotations' `area` is the
segmentation area instead, which decides the small/medium/large split, so `APs/APm/APl` and
`ARs/ARm/ARl` (not the others) can differ from official numbers; pass the real instances json
(`annotation_file`) to get those exactly.
"""

from __future__ import annotations  # (pycocotools types in signatures, imported lazily)

import contextlib
import io
from typing import Sequence

from absl import logging
import numpy as np

from ssd_jax import errors
from ssd_jax import file_io
from ssd_jax.evaluation import pixel_boxes
from ssd_jax.evaluation import result as result_lib

STAT_NAMES = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl',
              'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl')


def _pycocotools():
  """(pycocotools.coco, pycocotools.cocoeval), imported where COCO metrics are computed: the
  rest of the package runs without pycocotools."""
  from pycocotools import coco  # pylint: disable=g-import-not-at-top
  from pycocotools import cocoeval  # pylint: disable=g-import-not-at-top
  return coco, cocoeval


def _quiet():
  """pycocotools prints progress to stdout; keep it out of the logs."""
  return contextlib.redirect_stdout(io.StringIO())


def coco_from_dataset(dataset: dict) -> 'pycocotools.coco.COCO':
  """A pycocotools COCO object from an in-memory instances dict."""
  with _quiet():
    coco = _pycocotools()[0].COCO()
    coco.dataset = dataset
    coco.createIndex()
  return coco


def load_coco(path: str) -> 'pycocotools.coco.COCO':
  """Loads an instances json (as `COCO(path)` does); raises FileNotFoundError / UserError with
  the path."""
  dataset = file_io.read_json(path, 'COCO ground truth file')
  if not isinstance(dataset, dict):
    raise errors.UserError(f'{path} is not a COCO instances json (a JSON '
                           f'{type(dataset).__name__}, not an object).')
  try:
    return coco_from_dataset(dataset)
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise errors.UserError(f'{path} is not a COCO instances json ({type(e).__name__}: {e}).'
                           ) from None


def check_results(coco_gt: 'pycocotools.coco.COCO', results: Sequence[dict]) -> None:
  """Raises UserError naming the first bad detection: unknown image or category id, missing
  field, a string or boolean where a number belongs, non-finite number or negative width or
  height."""
  image_ids, cat_ids = set(coco_gt.getImgIds()), set(coco_gt.getCatIds())
  for i, det in enumerate(results):
    try:
      image_id, cat_id, bbox, score = (det['image_id'], det['category_id'], det['bbox'],
                                       det['score'])
    except (KeyError, TypeError) as e:
      raise errors.UserError(f'detection {i} ({det!r:.200}) is not a COCO result with '
                             f'image_id, category_id, bbox [x, y, w, h] and score: {e!r}'
                             ) from None
    # True == 1 and "0.5" converts to a float: check the types, not just the values.
    for key, ok in (('image_id', _is_integer(image_id) and image_id in image_ids),
                    ('category_id', _is_integer(cat_id) and cat_id in cat_ids),
                    ('bbox', isinstance(bbox, (list, tuple)) and len(bbox) == 4 and
                     all(map(file_io.is_number, bbox))),
                    ('score', file_io.is_number(score))):
      if not ok:
        raise errors.UserError(
            f'detection {i}: {key} {det[key]!r:.100} is not ' + {
                'image_id': f'an image id of the ground truth ({len(image_ids)} images)',
                'category_id': f'a category id of the ground truth (ids {sorted(cat_ids)})',
                'bbox': 'a list of 4 numbers [x, y, w, h] (not strings or booleans)',
                'score': 'a number (not a string or boolean)'}[key] + '.')
    try:
      bbox, score = np.asarray(bbox, np.float64), float(score)
    except OverflowError:  # An int beyond 1.8e308.
      bbox, score = np.full(4, np.inf), np.inf
    if not np.isfinite(bbox).all() or not np.isfinite(score):
      raise errors.UserError(f'detection {i} has a bad bbox or score (need 4 finite numbers '
                             f'and a finite score): bbox={det["bbox"]!r}, '
                             f'score={det["score"]!r}.')
    if bbox[2] < 0 or bbox[3] < 0:
      raise errors.UserError(f'detection {i} has a negative width or height: '
                             f'bbox={det["bbox"]!r}.')


def _is_integer(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def coco_evaluate(coco_gt: 'pycocotools.coco.COCO', results: Sequence[dict],
                  image_ids: Sequence[int] | None = None) -> result_lib.EvalResult:
  """COCOeval bbox metrics of `results` on `coco_gt` (restricted to `image_ids` if given).

  Per-class `AP/<name>` and `AP50/<name>` are the means over `eval['precision']` entries > -1,
  as `summarize()` does for all classes; `nan` for a class without ground truth.
  """
  check_results(coco_gt, results)
  cats = coco_gt.loadCats(sorted(coco_gt.getCatIds()))  # COCOeval's category order.
  class_names = tuple(cat['name'] for cat in cats)
  if results:
    with _quiet():
      # loadRes adds fields to the dicts it is given: give it copies.
      coco_dt = coco_gt.loadRes([dict(det) for det in results])
  else:
    logging.warning('No detections: every COCO metric is 0.')
    coco_dt = coco_from_dataset({'images': list(coco_gt.dataset['images']),
                                 'categories': list(coco_gt.dataset['categories']),
                                 'annotations': []})
  coco_eval = _pycocotools()[1].COCOeval(coco_gt, coco_dt, 'bbox')
  if image_ids is not None:
    coco_eval.params.imgIds = sorted(set(image_ids))
  with _quiet():
    coco_eval.evaluate()
    coco_eval.accumulate()
  summary = io.StringIO()
  with contextlib.redirect_stdout(summary):
    coco_eval.summarize()
  metrics = {name: float(value) for name, value in zip(STAT_NAMES, coco_eval.stats)}
  metrics = {'mAP': metrics['AP'], **metrics}

  precision = coco_eval.eval['precision']  # [T iou, R recall, K class, A area, M max dets]
  iou_50 = int(np.argmin(np.abs(coco_eval.params.iouThrs - 0.5)))
  iou_75 = int(np.argmin(np.abs(coco_eval.params.iouThrs - 0.75)))
  recall_points = coco_eval.params.recThrs
  per_class_ap, per_class_ap50, curves = {}, {}, {}
  for k, name in enumerate(class_names):
    for store, p in ((per_class_ap, precision[:, :, k, 0, -1]),
                     (per_class_ap50, precision[iou_50, :, k, 0, -1])):
      store[f'{name}'] = float(np.mean(p[p > -1])) if (p > -1).any() else float('nan')
    if (precision[iou_50, :, k, 0, -1] > -1).any():
      curves[name] = [(f'IoU={coco_eval.params.iouThrs[t]:.2f}', recall_points,
                       precision[t, :, k, 0, -1]) for t in (iou_50, iou_75)]
  metrics.update({f'AP/{name}': v for name, v in per_class_ap.items()})
  metrics.update({f'AP50/{name}': v for name, v in per_class_ap50.items()})

  gt_ids = coco_gt.getAnnIds(imgIds=coco_eval.params.imgIds, iscrowd=False)
  num_gt = {name: 0 for name in class_names}
  name_of = {cat['id']: cat['name'] for cat in cats}
  for ann in coco_gt.loadAnns(gt_ids):
    num_gt[name_of[ann['category_id']]] += 1
  num_det = {name: 0 for name in class_names}
  evaluated = set(coco_eval.params.imgIds)
  for det in results:
    if det['image_id'] in evaluated:
      num_det[name_of[det['category_id']]] += 1
  return result_lib.EvalResult(metrics=metrics, class_names=class_names, num_ground_truth=num_gt,
                               num_detections=num_det, curves=curves,
                               summary=summary.getvalue())


class CocoEvaluator:
  """Accumulates eval batches and detections, then scores them with pycocotools.

  Args:
    class_names: names of labels 1..C (the table's rows when the ground truth is built here).
    category_ids: COCO category id of label i at `category_ids[i - 1]`; default 1..C.
    annotation_file: the instances json (path, dict or COCO object) the batches come from;
      None builds the ground truth from the batches (see the module docstring for `area`).
      With it, only the images added are evaluated, and their `image_id` must be the json's.

  Detections go to COCO pixels with `x = x_norm * width` (xywh), `orig_size` = (height, width).
  Non-integer image ids (VOC stems) are numbered in order of arrival when the ground truth is
  built here.
  """

  def __init__(self, class_names: Sequence[str], category_ids: Sequence[int] | None = None,
               annotation_file=None):
    self.class_names = tuple(class_names)
    self.category_ids = (tuple(range(1, len(class_names) + 1)) if category_ids is None
                         else tuple(int(c) for c in category_ids))
    if len(self.category_ids) != len(self.class_names):
      raise ValueError(f'{len(self.category_ids)} category ids for {len(self.class_names)} '
                       'class names.')
    if isinstance(annotation_file, _pycocotools()[0].COCO):
      self._coco_gt = annotation_file
    elif isinstance(annotation_file, dict):
      self._coco_gt = coco_from_dataset(annotation_file)
    elif annotation_file is not None:
      self._coco_gt = load_coco(annotation_file)
    else:
      self._coco_gt = None
    self.reset()

  def reset(self) -> None:
    """Forgets everything added so far."""
    self._images = {}  # image id -> {'id', 'height', 'width'}, in order of arrival.
    self._gt = []  # (image id [G], category id [G], xywh [G, 4], crowd [G]) per batch.
    self._det = []  # (image id [D], category id [D], xywh [D, 4], score [D]) per batch.
    self._names = {}  # Non-integer image id -> the integer id given to it.

  def _image_id(self, raw) -> int:
    if isinstance(raw, (int, np.integer)):
      return int(raw)
    if self._coco_gt is not None:
      raise ValueError(f'image_id {raw!r} is not an integer COCO id of the annotation file.')
    key = raw.decode() if isinstance(raw, bytes) else str(raw)
    return self._names.setdefault(key, len(self._names) + 1)

  def add_batch(self, batch, detections) -> None:
    """Adds one batch: `batch` (boxes, labels, mask, crowd, image_id, orig_size, example_mask)
    and its `detections` (boxes, scores, classes, valid)."""
    keep = np.asarray(batch.get('example_mask', np.ones(len(batch['orig_size']), bool)), bool)
    orig_size = np.asarray(batch['orig_size'])[keep]  # [n, 2]
    ids = np.array([self._image_id(i) for i in np.asarray(batch['image_id'])[keep].tolist()],
                   np.int64)
    for image_id, (height, width) in zip(ids.tolist(), orig_size.tolist()):
      self._images[image_id] = {'id': image_id, 'height': int(height), 'width': int(width)}
    categories = np.asarray(self.category_ids)

    if self._coco_gt is None:
      labels = np.asarray(batch['labels'])[keep]  # [n, M]
      crowd = np.asarray(batch.get('crowd', np.zeros(labels.shape, bool)), bool)[keep]
      is_gt = (labels > 0) & (np.asarray(batch['mask'], bool)[keep] | crowd)
      xywh = pixel_boxes.yxyx_to_coco_xywh(np.asarray(batch['boxes'])[keep], orig_size)
      gt_image = np.broadcast_to(ids[:, None], labels.shape)
      self._gt.append((gt_image[is_gt], categories[labels[is_gt] - 1], xywh[is_gt],
                       crowd[is_gt]))

    valid = np.asarray(detections['valid'], bool)[keep]  # [n, K]
    classes = np.asarray(detections['classes'])[keep][valid]
    if classes.size and (classes.min() < 1 or classes.max() > len(categories)):
      raise ValueError(f'detection classes outside 1..{len(categories)}: {classes.max()}.')
    xywh = pixel_boxes.yxyx_to_coco_xywh(np.asarray(detections['boxes'])[keep], orig_size)
    det_image = np.broadcast_to(ids[:, None], valid.shape)
    self._det.append((det_image[valid], categories[classes - 1], xywh[valid],
                      np.asarray(detections['scores'], np.float64)[keep][valid]))

  def ground_truth(self) -> 'pycocotools.coco.COCO':
    """The COCO ground truth: the annotation file's, or one built from the batches."""
    if self._coco_gt is not None:
      return self._coco_gt
    annotations = []
    for image, cat, xywh, crowd in self._gt:
      for i, c, box, is_crowd in zip(image.tolist(), cat.tolist(), xywh.tolist(), crowd.tolist()):
        annotations.append({'id': len(annotations) + 1,  # COCOeval needs ids >= 1.
                            'image_id': i, 'category_id': c, 'bbox': box,
                            'area': box[2] * box[3], 'iscrowd': int(is_crowd)})
    return coco_from_dataset({
        'images': list(self._images.values()),
        'categories': [{'id': c, 'name': n} for c, n in zip(self.category_ids, self.class_names)],
        'annotations': annotations})

  def results(self) -> list[dict]:
    """The detections in COCO results format."""
    out = []
    for image, cat, xywh, score in self._det:
      out.extend({'image_id': i, 'category_id': c, 'bbox': box, 'score': s}
                 for i, c, box, s in zip(image.tolist(), cat.tolist(), xywh.tolist(),
                                         score.tolist()))
    return out

  def evaluate(self) -> result_lib.EvalResult:
    """Full result: metrics, per-class counts, precision/recall curves and the printout."""
    if not self._images:
      raise ValueError('CocoEvaluator: no images were added (every example_mask False?).')
    return coco_evaluate(self.ground_truth(), self.results(), image_ids=list(self._images))

  def result(self) -> dict[str, float]:
    """{'mAP': AP, 'AP': .., .., 'ARl': .., 'AP/<class>': .., 'AP50/<class>': ..}."""
    return self.evaluate().metrics
