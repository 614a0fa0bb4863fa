"""experiments/error_analysis.py: the kinds of detections on a hand-made case and against a
plain loop over random cases, and the class-agnostic AP worked out by hand."""

import numpy as np
import pytest

from experiments import error_analysis
from ssd_jax.evaluation import devkit

A, B = [0, 0, 99, 99], [200, 200, 299, 299]  # Class 1 and class 2 objects in image 0.
C = [0, 0, 49, 49]  # A difficult class 1 object in image 1.
GROUND_TRUTH = devkit.VocGroundTruth(image=np.array([0, 0, 1]), label=np.array([1, 2, 1]),
                                     boxes=np.array([A, B, C], np.float64),
                                     difficult=np.array([False, False, True]))
# (label, image, box, score, kind): IoU with A of 0.667, 0.6 and 0.41 for the first three.
CASE = [(1, 0, [20, 0, 119, 99], 0.9, 'correct'),
        (1, 0, [0, 25, 99, 124], 0.8, 'duplicate'),
        (1, 0, [0, 0, 99, 40], 0.7, 'localization'),
        (1, 0, B, 0.6, 'other_class'),
        (1, 0, [400, 400, 449, 449], 0.5, 'background'),
        (1, 1, C, 0.4, 'ignored'),
        (2, 0, A, 0.3, 'other_class'),
        (2, 0, B, 0.2, 'correct')]


def detections(rows):
  return devkit.VocDetections(image=np.array([r[1] for r in rows]),
                              label=np.array([r[0] for r in rows]),
                              boxes=np.array([r[2] for r in rows], np.float64),
                              scores=np.array([r[3] for r in rows], np.float64))


def test_kinds_of_a_hand_made_case():
  order = [5, 2, 7, 0, 3, 6, 1, 4]  # The input order does not matter.
  kinds, confused_with = error_analysis.detection_kinds(
      GROUND_TRUTH, detections([CASE[i] for i in order]), 2)
  assert [error_analysis.KINDS[k] for k in kinds] == [CASE[i][4] for i in order]
  # The two 'other_class' detections: class 1 on B (class 2), class 2 on A (class 1).
  assert confused_with.tolist() == [2 if i == 3 else 1 if i == 6 else 0 for i in order]


def test_kinds_with_a_single_class():
  kinds, confused_with = error_analysis.detection_kinds(
      *error_analysis.class_agnostic(GROUND_TRUTH, detections(CASE)), 1)
  assert [error_analysis.KINDS[k] for k in kinds] == [
      'correct', 'duplicate', 'localization', 'correct', 'background', 'ignored', 'duplicate',
      'duplicate']
  assert not confused_with.any()


def test_analysis_of_the_hand_made_case():
  result = error_analysis.analyse(GROUND_TRUTH, detections(CASE), ('one', 'two'))
  # Class 1: its first detection takes A at IoU 0.667 (AP 1 at IoU 0.3 and 0.5, 0 at 0.7);
  # class 2: a false positive, then B (AP 0.5 at every threshold).
  assert result['mAP@0.3'] == result['mAP@0.5'] == pytest.approx(0.75)
  assert result['mAP@0.7'] == pytest.approx(0.25)
  # Class-agnostic, in score order: TP, FP, FP, TP (recall 1 at precision 2/4), FP, ignored,
  # FP, FP. 11-point AP: precision 1 for recall 0 .. 0.5, 0.5 for 0.6 .. 1.
  assert result['class_agnostic_AP@0.5'] == pytest.approx((6 * 1 + 5 * 0.5) / 11)
  assert result['num_objects'] == 2
  # Top-1 of each class (one non-difficult object each): class 1's correct detection and
  # class 2's detection on A.
  assert result['top_detections'] == {'correct': 1, 'duplicate': 0, 'localization': 0,
                                      'other_class': 1, 'background': 0, 'ignored': 0}
  assert result['confusions'] == [['two', 'one', 1]]
  report = error_analysis.format_report(result)
  assert 'class-agnostic AP at IoU 0.5: 0.773' in report and 'two -> one 1' in report


def loop_kinds(gt, det, num_classes, threshold=0.5):
  """A plain loop: the devkit's greedy matching per class, then the overlaps' rules; per
  detection (kind, class of the other-class object it overlaps most if 'other_class' else 0)."""
  kinds = [None] * len(det.label)
  iou = lambda a, b: devkit.devkit_iou(np.asarray(a, np.float64), np.asarray(b, np.float64))
  for label in range(1, num_classes + 1):
    taken = set()
    ids = sorted((i for i in range(len(det.label)) if det.label[i] == label),
                 key=lambda i: -det.scores[i])
    for i in ids:
      same = [g for g in range(len(gt.label)) if gt.image[g] == det.image[i]
              and gt.label[g] == label]
      other = [g for g in range(len(gt.label)) if gt.image[g] == det.image[i]
               and gt.label[g] != label]
      best = max(same, key=lambda g: iou(det.boxes[i], gt.boxes[g]), default=None)
      best_iou = iou(det.boxes[i], gt.boxes[best]) if best is not None else -1
      if best_iou >= threshold and gt.difficult[best]:
        kinds[i] = 'ignored', 0
      elif best_iou >= threshold and best not in taken:
        taken.add(best)
        kinds[i] = 'correct', 0
      elif best_iou >= threshold:
        kinds[i] = 'duplicate', 0
      elif best_iou >= 0.1:
        kinds[i] = 'localization', 0
      elif other and max(iou(det.boxes[i], gt.boxes[g]) for g in other) >= 0.1:
        kinds[i] = 'other_class', gt.label[max(other, key=lambda g: iou(det.boxes[i],
                                                                      gt.boxes[g]))]
      else:
        kinds[i] = 'background', 0
  return kinds


def random_boxes(rng, n):
  xy = rng.uniform(0, 80, (n, 2))
  return np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2))], axis=1).round()


@pytest.mark.parametrize('seed', range(4))
def test_kinds_match_a_plain_loop(seed):
  rng = np.random.default_rng(seed)
  num_gt, num_det, classes = 30, 200, 3
  gt = devkit.VocGroundTruth(image=rng.integers(0, 6, num_gt), label=rng.integers(1, 4, num_gt),
                             boxes=random_boxes(rng, num_gt), difficult=rng.random(num_gt) < 0.3)
  gt_ids = rng.integers(0, num_gt, num_det)  # Most detections near a ground truth box.
  boxes = gt.boxes[gt_ids] + rng.normal(0, 8, (num_det, 4)).round()
  boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
  det = devkit.VocDetections(image=np.where(rng.random(num_det) < 0.9, gt.image[gt_ids],
                                         rng.integers(0, 7, num_det)),
                             label=rng.integers(1, 4, num_det), boxes=boxes,
                             scores=rng.permutation(num_det) / num_det)  # No ties.
  kinds, confused_with = error_analysis.detection_kinds(gt, det, classes)
  expected = loop_kinds(gt, det, classes)
  assert [error_analysis.KINDS[k] for k in kinds] == [kind for kind, _ in expected]
  assert confused_with.tolist() == [label for _, label in expected]
  assert len({kind for kind, _ in expected}) == len(error_analysis.KINDS)  # All occur.
