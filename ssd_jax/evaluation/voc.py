"""PASCAL VOC detection AP (`evaluate_voc`) and the training loop's evaluator (`VocEvaluator`).

The devkit's rules (matching, precision/recall, AP) are those of `devkit.py`; `evaluate_voc`
applies them per class, and the evaluator adds AP by object size (`size_bins.py`).
"""

from typing import Sequence

from absl import logging
import numpy as np

from ssd_jax.evaluation import devkit
from ssd_jax.evaluation import pixel_boxes
from ssd_jax.evaluation import result as result_lib
from ssd_jax.evaluation import size_bins


def evaluate_voc(ground_truth: devkit.VocGroundTruth, detections: devkit.VocDetections,
                 class_names: Sequence[str], use_07_metric: bool = True,
                 iou_threshold: float = 0.5) -> result_lib.EvalResult:
  """Per-class VOC AP and their mean, with the devkit's rules (`devkit.py`).

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
  devkit.check_boxes(ground_truth.boxes, 'ground truth boxes')
  devkit.check_boxes(detections.boxes, 'detection boxes')
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
    tp, fp = devkit.match_class(
        np.asarray(detections.image)[in_det], np.asarray(detections.boxes)[in_det],
        scores[in_det], np.asarray(ground_truth.image)[in_gt],
        np.asarray(ground_truth.boxes)[in_gt], difficult, iou_threshold)
    num_gt[name], num_det[name] = num_positives, int(in_det.sum())
    if num_positives == 0:
      metrics[f'AP/{name}'] = float('nan')
      continue
    recall, precision = devkit.precision_recall(tp, fp, num_positives)
    metrics[f'AP/{name}'] = devkit.voc_ap(recall, precision, use_07_metric)
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

  def ground_truth(self) -> devkit.VocGroundTruth:
    return devkit.VocGroundTruth(*_concat(self._gt, [(0,), (0,), (0, 4), (0,)],
                                   [np.int64, np.int64, np.float64, bool]))

  def detections(self) -> devkit.VocDetections:
    return devkit.VocDetections(*_concat(self._det, [(0,), (0,), (0, 4), (0,)],
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
