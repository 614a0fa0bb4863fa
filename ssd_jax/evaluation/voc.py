"""PASCAL VOC detection AP, with the devkit's rules, vectorized per class.

Rules (the official devkit's `VOCevaldet.m`; py-faster-rcnn's `voc_eval.py` is a port of it):
detections of a class are taken in order of decreasing score (ties keep their input order); a
detection's ground truth is its best-overlap box of that class in its image, taken or not
(the first one on equal overlap); with overlap >= 0.5 it is a true positive if that box is not
difficult and not already taken, a false positive (duplicate) if taken, and ignored if the box
is difficult; otherwise a false positive. Overlap is IoU with the devkit's +1 pixel rule for
widths, heights and intersections. Recall counts only ground truth that is not difficult.
AP is the VOC2007 11-point interpolated AP or the VOC2010+ area under the monotone precision
envelope.

Two details follow the devkit where `voc_eval.py` differs: the overlap test is `>=` 0.5
(`voc_eval.py` has `>`; they differ only for an IoU of exactly 0.5), and the score sort is
stable (`voc_eval.py` uses numpy's unstable default sort; they differ only on tied scores).

Greedy matching looks sequential, but a detection's best-overlap box does not depend on what
was matched before it, so the true positives are simply the first detection (in score order)
of each (image, ground-truth box) pair; the rest of that pair's detections are duplicates.
That is what `match_class` computes with array operations.
"""

import dataclasses
from typing import Sequence

from absl import logging
import numpy as np

from ssd_jax.evaluation import pixel_boxes
from ssd_jax.evaluation import result as result_lib
from ssd_jax.evaluation import size_bins

# Detection-by-ground-truth IoU entries computed at once (bounds the memory of `match_class`).
_CHUNK_ELEMENTS = 1 << 20


@dataclasses.dataclass
class VocGroundTruth:
  """Ground truth boxes of a set of images, flattened; boxes in devkit pixel xyxy."""
  image: np.ndarray  # int [G], index of the image in the evaluated set.
  label: np.ndarray  # int [G], 1-based class.
  boxes: np.ndarray  # float64 [G, 4], devkit [xmin, ymin, xmax, ymax].
  difficult: np.ndarray  # bool [G].


@dataclasses.dataclass
class VocDetections:
  """Detections of a set of images, flattened; boxes in devkit pixel xyxy."""
  image: np.ndarray  # int [D], index of the image in the evaluated set.
  label: np.ndarray  # int [D], 1-based class.
  boxes: np.ndarray  # float64 [D, 4], devkit [xmin, ymin, xmax, ymax].
  scores: np.ndarray  # float64 [D].


def devkit_iou(boxes, gt_boxes):
  """IoU with the devkit's +1 rule; boxes and gt_boxes [..., 4] xyxy broadcast together.

  The operations are those of `voc_eval.py`, in the same order, so the values are bitwise the
  same.
  """
  ixmin = np.maximum(gt_boxes[..., 0], boxes[..., 0])
  iymin = np.maximum(gt_boxes[..., 1], boxes[..., 1])
  ixmax = np.minimum(gt_boxes[..., 2], boxes[..., 2])
  iymax = np.minimum(gt_boxes[..., 3], boxes[..., 3])
  iw = np.maximum(ixmax - ixmin + 1., 0.)
  ih = np.maximum(iymax - iymin + 1., 0.)
  inters = iw * ih
  uni = ((boxes[..., 2] - boxes[..., 0] + 1.) * (boxes[..., 3] - boxes[..., 1] + 1.) +
         (gt_boxes[..., 2] - gt_boxes[..., 0] + 1.) *
         (gt_boxes[..., 3] - gt_boxes[..., 1] + 1.) - inters)
  return inters / uni


def voc_ap(recall, precision, use_07_metric: bool) -> float:
  """AP from a precision/recall curve (in detection order), as `voc_eval.py`'s `voc_ap`."""
  recall = np.asarray(recall, np.float64)
  precision = np.asarray(precision, np.float64)
  if use_07_metric:
    # 11-point: mean over t = 0, 0.1, .., 1 of the best precision at recall >= t. recall is
    # non-decreasing, so {recall >= t} is a suffix and its best precision a suffix maximum.
    suffix_max = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, np.arange(0., 1.1, 0.1), side='left')
    ap = 0.
    for i in first:  # Summed in voc_ap's order for bitwise-equal results.
      p = suffix_max[i] if i < recall.size else 0
      ap = ap + p / 11.
    return float(ap)
  mrec = np.concatenate(([0.], recall, [1.]))
  mpre = np.concatenate(([0.], precision, [0.]))
  mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # Monotone precision envelope.
  i = np.where(mrec[1:] != mrec[:-1])[0]
  return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def match_class(det_image, det_boxes, det_scores, gt_image, gt_boxes, gt_difficult,
                iou_threshold: float = 0.5):
  """Devkit matching of one class's detections to its ground truth.

  Args:
    det_image: int [D], image index of each detection.
    det_boxes: float [D, 4], devkit pixel xyxy.
    det_scores: float [D].
    gt_image: int [G], image index of each ground truth box (annotation order within an image).
    gt_boxes: float [G, 4], devkit pixel xyxy.
    gt_difficult: bool [G].
    iou_threshold: a detection may match ground truth with IoU >= this.

  Returns:
    tp, fp: float64 [D], 0/1 per detection in order of decreasing score (stable), both 0 for
    a detection matched to difficult ground truth.
  """
  order = np.argsort(-np.asarray(det_scores, np.float64), kind='stable')
  det_image = np.asarray(det_image)[order]
  det_boxes = np.asarray(det_boxes, np.float64)[order]
  num_det = det_image.size

  # Ground truth as a padded table [num gt images + 1, max per image, ...]; the extra last row
  # has no boxes and serves detections in images without ground truth of this class.
  gt_order = np.argsort(gt_image, kind='stable')
  gt_image = np.asarray(gt_image)[gt_order]
  images, starts, counts = np.unique(gt_image, return_index=True, return_counts=True)
  max_gt = max(int(counts.max()) if counts.size else 0, 1)
  rows = np.repeat(np.arange(images.size), counts)
  slots = np.arange(gt_image.size) - np.repeat(starts, counts)
  table_boxes = np.zeros((images.size + 1, max_gt, 4))
  table_boxes[rows, slots] = np.asarray(gt_boxes, np.float64)[gt_order]
  table_valid = np.zeros((images.size + 1, max_gt), bool)
  table_valid[rows, slots] = True
  table_difficult = np.zeros((images.size + 1, max_gt), bool)
  table_difficult[rows, slots] = np.asarray(gt_difficult, bool)[gt_order]

  det_row = np.searchsorted(images, det_image)
  found = det_row < images.size
  found[found] = images[det_row[found]] == det_image[found]
  det_row[~found] = images.size

  # Best-overlap ground truth of each detection, in chunks of detections.
  ovmax = np.empty(num_det)
  jmax = np.empty(num_det, np.int64)
  chunk = max(_CHUNK_ELEMENTS // max_gt, 1)
  for start in range(0, num_det, chunk):
    rows_c = det_row[start:start + chunk]
    overlaps = devkit_iou(det_boxes[start:start + chunk, None, :], table_boxes[rows_c])
    overlaps = np.where(table_valid[rows_c], overlaps, -np.inf)  # [chunk, max_gt]
    jmax[start:start + chunk] = np.argmax(overlaps, axis=1)
    ovmax[start:start + chunk] = np.take_along_axis(
        overlaps, jmax[start:start + chunk, None], axis=1)[:, 0]

  hit = ovmax >= iou_threshold
  hit_difficult = hit & table_difficult[det_row, jmax]
  claims = np.flatnonzero(hit & ~hit_difficult)
  # The first claim (in score order) on each (image, ground truth) pair is the true positive.
  _, first = np.unique(det_row[claims] * max_gt + jmax[claims], return_index=True)
  tp = np.zeros(num_det)
  tp[claims[first]] = 1.
  fp = np.where(hit_difficult, 0., 1. - tp)
  return tp, fp


def precision_recall(tp, fp, num_positives: int):
  """Cumulative precision and recall [D] from per-detection tp/fp in score order."""
  tp = np.cumsum(tp)
  fp = np.cumsum(fp)
  recall = tp / float(num_positives)
  precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
  return recall, precision


def check_boxes(boxes, what: str, ids=None) -> None:
  """Raises ValueError naming the first non-finite or negative-size xyxy box."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  bad_finite = ~np.isfinite(boxes).all(axis=1)
  bad_size = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
  for bad, problem in ((bad_finite, 'non-finite (NaN or inf) coordinates'),
                       (bad_size, 'negative size (xmax < xmin or ymax < ymin)')):
    if bad.any():
      i = int(np.flatnonzero(bad)[0])
      where = f' (image {ids[i]!r})' if ids is not None else ''
      raise ValueError(f'{int(bad.sum())} {what} have {problem}; the first is '
                       f'[xmin, ymin, xmax, ymax] = {boxes[i].tolist()}{where}.')


def evaluate_voc(ground_truth: VocGroundTruth, detections: VocDetections,
                 class_names: Sequence[str], use_07_metric: bool = True,
                 iou_threshold: float = 0.5) -> result_lib.EvalResult:
  """Per-class VOC AP and their mean (see the module docstring for the rules).

  A class without ground truth that is not difficult has AP `nan` and is left out of `mAP`
  (`voc_eval.py` would give 0 or nan for it). Raises ValueError on labels outside
  1..len(class_names), non-finite scores or boxes, and negative-size boxes.
  """
  class_names = tuple(class_names)
  num_classes = len(class_names)
  for what, labels in (('ground truth', ground_truth.label), ('detections', detections.label)):
    labels = np.asarray(labels)
    outside = (labels < 1) | (labels > num_classes)
    if outside.any():
      raise ValueError(f'{what} have class labels outside 1..{num_classes} (the number of '
                       f'class names), e.g. {int(labels[outside][0])}.')
  check_boxes(ground_truth.boxes, 'ground truth boxes')
  check_boxes(detections.boxes, 'detection boxes')
  scores = np.asarray(detections.scores, np.float64)
  if not np.isfinite(scores).all():
    raise ValueError(f'{int((~np.isfinite(scores)).sum())} detection scores are NaN or inf.')
  if scores.size == 0:
    logging.warning('No detections: every class with ground truth gets AP 0.')

  metrics, num_gt, num_det, curves = {}, {}, {}, {}
  for label, name in enumerate(class_names, start=1):
    in_gt = np.asarray(ground_truth.label) == label
    in_det = np.asarray(detections.label) == label
    difficult = np.asarray(ground_truth.difficult, bool)[in_gt]
    num_positives = int((~difficult).sum())
    tp, fp = match_class(
        np.asarray(detections.image)[in_det], np.asarray(detections.boxes)[in_det],
        scores[in_det], np.asarray(ground_truth.image)[in_gt],
        np.asarray(ground_truth.boxes)[in_gt], difficult, iou_threshold)
    num_gt[name], num_det[name] = num_positives, int(in_det.sum())
    if num_positives == 0:
      metrics[f'AP/{name}'] = float('nan')
      continue
    recall, precision = precision_recall(tp, fp, num_positives)
    metrics[f'AP/{name}'] = voc_ap(recall, precision, use_07_metric)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    curves[name] = [(f'IoU={iou_threshold:g}', recall, precision),
                    ('interpolated', recall, envelope)]

  aps = [value for value in metrics.values() if not np.isnan(value)]
  if not aps:
    logging.warning('No class has ground truth (that is not difficult): mAP is nan.')
  metrics = {'mAP': float(np.mean(aps)) if aps else float('nan'), **metrics}
  return result_lib.EvalResult(metrics=metrics, class_names=class_names, num_ground_truth=num_gt,
                               num_detections=num_det, curves=curves)


def _decode_id(image_id):
  return image_id.decode() if isinstance(image_id, bytes) else image_id


class VocEvaluator:
  """Accumulates eval batches and detections, then scores them with `evaluate_voc`.

  Batches and detections follow docs/CONVENTIONS.md (numpy or jax arrays): normalized yxyx
  boxes, 1-based labels. Ground truth is `labels > 0 & (mask | difficult)` of examples with
  `example_mask`; detections are those with `valid`. Boxes go to devkit pixels with
  `x_norm * width + 1`; ground truth is then rounded to integers (`round_ground_truth`), since
  devkit annotations are integers that tfds stores as float32 fractions; detections are not.
  Pass `round_ground_truth=False` for data annotated with sub-pixel coordinates.
  Besides `mAP` and per-class AP, `evaluate()` reports `mAP_small`, `mAP_medium` and
  `mAP_large`: AP restricted to objects of each size (`size_bins.py`).

  Usage:
    evaluator = VocEvaluator(config.input.class_names, use_07_metric=True)
    for batch in eval_batches:
      evaluator.add_batch(batch, postprocess.detect(...))
    metrics = evaluator.result()  # {'mAP': .., 'AP/aeroplane': .., ..}
  """

  def __init__(self, class_names: Sequence[str], use_07_metric: bool = True,
               iou_threshold: float = 0.5, round_ground_truth: bool = True):
    self.class_names = tuple(class_names)
    self.use_07_metric = use_07_metric
    self.iou_threshold = iou_threshold
    self.round_ground_truth = round_ground_truth
    self.reset()

  def reset(self) -> None:
    """Forgets everything added so far."""
    self.image_ids = []  # Per image index: the batch's image_id (str for VOC stems).
    self._gt = []  # (image, label, boxes, difficult) per batch.
    self._det = []  # (image, label, boxes, scores) per batch.
    self._gt_area, self._det_area = [], []  # (relative box areas,) per batch (size_bins.py).

  def add_batch(self, batch, detections) -> None:
    """Adds one batch: `batch` (boxes, labels, mask, difficult, image_id, orig_size,
    example_mask) and its `detections` (boxes, scores, classes, valid)."""
    keep = np.asarray(batch.get('example_mask', np.ones(len(batch['orig_size']), bool)), bool)
    orig_size = np.asarray(batch['orig_size'])[keep]  # [n, 2]
    image = len(self.image_ids) + np.arange(orig_size.shape[0])  # [n]
    self.image_ids.extend(_decode_id(i) for i in np.asarray(batch['image_id'])[keep].tolist())

    labels = np.asarray(batch['labels'])[keep]  # [n, M]
    difficult = np.asarray(batch['difficult'], bool)[keep]
    is_gt = (labels > 0) & (np.asarray(batch['mask'], bool)[keep] | difficult)
    gt_boxes = pixel_boxes.yxyx_to_devkit_xyxy(np.asarray(batch['boxes'])[keep], orig_size)
    if self.round_ground_truth:
      gt_boxes = np.round(gt_boxes)
    gt_image = np.broadcast_to(image[:, None], labels.shape)
    self._gt.append((gt_image[is_gt], labels[is_gt], gt_boxes[is_gt], difficult[is_gt]))
    image_size = np.broadcast_to(orig_size[:, None, :], labels.shape + (2,))
    self._gt_area.append((size_bins.relative_area(gt_boxes[is_gt], image_size[is_gt]),))

    valid = np.asarray(detections['valid'], bool)[keep]  # [n, K]
    det_boxes = pixel_boxes.yxyx_to_devkit_xyxy(np.asarray(detections['boxes'])[keep], orig_size)
    det_image = np.broadcast_to(image[:, None], valid.shape)
    self._det.append((det_image[valid], np.asarray(detections['classes'])[keep][valid],
                      det_boxes[valid], np.asarray(detections['scores'], np.float64)[keep][valid]))
    image_size = np.broadcast_to(orig_size[:, None, :], valid.shape + (2,))
    self._det_area.append((size_bins.relative_area(det_boxes[valid], image_size[valid]),))

  def ground_truth(self) -> VocGroundTruth:
    return VocGroundTruth(*_concat(self._gt, [(0,), (0,), (0, 4), (0,)],
                                   [np.int64, np.int64, np.float64, bool]))

  def detections(self) -> VocDetections:
    return VocDetections(*_concat(self._det, [(0,), (0,), (0, 4), (0,)],
                                  [np.int64, np.int64, np.float64, np.float64]))

  def evaluate(self) -> result_lib.EvalResult:
    """Full result: metrics (with the size bins' mAP), per-class counts and PR curves."""
    ground_truth, detections = self.ground_truth(), self.detections()
    result = evaluate_voc(ground_truth, detections, self.class_names, self.use_07_metric,
                          self.iou_threshold)
    by_size = size_bins.evaluate_by_size(
        ground_truth, detections, _concat(self._gt_area, [(0,)], [np.float64])[0],
        _concat(self._det_area, [(0,)], [np.float64])[0], self.class_names,
        self.use_07_metric, self.iou_threshold)
    result.metrics = {'mAP': result.metrics['mAP'], **by_size, **result.metrics}
    return result

  def result(self) -> dict[str, float]:
    """{'mAP': .., 'mAP_small': .., 'mAP_medium': .., 'mAP_large': .., 'AP/<class name>': ..}."""
    return self.evaluate().metrics

  def detections_json(self) -> list[dict]:
    """The detections in the `ssd_jax.evaluate` file format (image stem, class name, devkit
    xywh), so that the command scores them against the devkit as this evaluator does."""
    det = self.detections()
    xyxy = det.boxes
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return [{'image_id': self.image_ids[i], 'category_id': self.class_names[c - 1],
             'bbox': box, 'score': s}
            for i, c, box, s in zip(det.image.tolist(), det.label.tolist(), xywh.tolist(),
                                    det.scores.tolist())]


def _concat(parts, empty_shapes, dtypes):
  """Concatenates per-batch tuples of arrays field by field."""
  if not parts:
    return [np.zeros(shape, dtype) for shape, dtype in zip(empty_shapes, dtypes)]
  return [np.concatenate(field) for field in zip(*parts)]
