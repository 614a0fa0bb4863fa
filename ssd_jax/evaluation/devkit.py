"""The PASCAL VOC devkit's primitives: overlap, matching, precision/recall and AP, vectorized.

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

import numpy as np

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
