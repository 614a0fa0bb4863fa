"""VOC AP restricted to small, medium and large objects, with COCO's rule for size ranges.

For a size bin, per class (COCO's `COCOeval.evaluateImg` with an `areaRng`, on top of the
devkit's matching in `devkit.py`):
- ground truth outside the bin is ignored, exactly like difficult ground truth: it still takes
  part in matching (a detection's best-overlap box may be it), a detection matched to it is
  neither a true nor a false positive, and it does not count in recall;
- a detection that is a false positive (no ground truth, too little overlap, or a duplicate)
  and whose own box lies outside the bin is ignored too, so that a correct-sized detection of
  a large object that is missing from the annotations does not count against small objects.
The AP of a bin is the mean over classes with ground truth (not difficult) in the bin; `nan`
if no class has any.

Bins are on the box's area relative to its image's area, not on COCO's absolute pixel areas
(32² and 96²): the detector sees every image resized to its input size, so what decides
whether a box can be found is its size relative to the image. A 128-px shapes image has only
16,384 pixels, so COCO's 32² would call a quarter of the image side "small", whereas in a
500x375 VOC image 32² is 9% of the side. The edges, 0.01 and 0.09 of the image area (10%
and 30% of the side for a square box), put SSD300's smallest default box (30 px = 10% of 300)
at the small/medium edge, and the shapes objects under 10% of the side (the hardest,
docs/results/shapes.md) in `small`.
"""

from typing import Sequence

import numpy as np

from ssd_jax.evaluation import devkit

# (name, low, high): relative area low <= area / image area < high.
SIZE_BINS = (('small', 0.0, 0.01), ('medium', 0.01, 0.09), ('large', 0.09, float('inf')))


def relative_area(boxes_xyxy, image_size_hw) -> np.ndarray:
  """Box area over image area; boxes [N, 4] pixel xyxy, image_size_hw [N, 2] (height, width)."""
  boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
  size = np.asarray(image_size_hw, np.float64).reshape(-1, 2)
  return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) /
          (size[:, 0] * size[:, 1]))


def evaluate_by_size(ground_truth: devkit.VocGroundTruth, detections: devkit.VocDetections,
                     gt_area, det_area, class_names: Sequence[str], use_07_metric: bool = True,
                     iou_threshold: float = 0.5, bins=SIZE_BINS) -> dict[str, float]:
  """{'mAP_<bin>': ..} for each bin (see the module docstring for the rule).

  Args:
    ground_truth, detections: as for `voc.evaluate_voc` (already checked by it).
    gt_area: float [G], relative area of each ground truth box (`relative_area`).
    det_area: float [D], relative area of each detection.
    class_names: the class list (labels are 1-based indices into it).
    use_07_metric, iou_threshold: as for `voc.evaluate_voc`.
    bins: (name, low, high) relative-area ranges.
  """
  gt_area = np.asarray(gt_area, np.float64)
  det_area = np.asarray(det_area, np.float64)
  gt_label, det_label = np.asarray(ground_truth.label), np.asarray(detections.label)
  scores = np.asarray(detections.scores, np.float64)
  metrics = {}
  for name, low, high in bins:
    gt_in = (gt_area >= low) & (gt_area < high)
    det_in = (det_area >= low) & (det_area < high)
    aps = []
    for label in range(1, len(class_names) + 1):
      in_gt, in_det = gt_label == label, det_label == label
      ignored = np.asarray(ground_truth.difficult, bool)[in_gt] | ~gt_in[in_gt]
      num_positives = int((~ignored).sum())
      if num_positives == 0:
        continue
      tp, fp = devkit.match_class(
          np.asarray(detections.image)[in_det], np.asarray(detections.boxes)[in_det],
          scores[in_det], np.asarray(ground_truth.image)[in_gt],
          np.asarray(ground_truth.boxes)[in_gt], ignored, iou_threshold)
      order = np.argsort(-scores[in_det], kind='stable')  # match_class's order
      fp = np.where(det_in[in_det][order], fp, 0.)  # unmatched and outside the bin: ignored
      keep = (tp + fp) > 0
      recall, precision = devkit.precision_recall(tp[keep], fp[keep], num_positives)
      aps.append(devkit.voc_ap(recall, precision, use_07_metric))
    metrics[f'mAP_{name}'] = float(np.mean(aps)) if aps else float('nan')
  return metrics
