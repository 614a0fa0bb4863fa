"""Size-bin AP (evaluation/size_bins.py) against a hand computation and a brute-force loop."""

import numpy as np
import pytest

from ssd_jax.evaluation import devkit
from ssd_jax.evaluation import size_bins
from ssd_jax.evaluation import voc


def brute_force_bin_ap(gt, dets, low, high, num_classes):
  """One detection at a time, as COCO's evaluateImg with an area range, on devkit matching.

  gt: list of (image, label, xyxy, difficult, relative area); dets: list of (image, label,
  xyxy, score, relative area).
  """
  def iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1.
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1.
    if iw <= 0 or ih <= 0:
      return 0.
    inter = iw * ih
    area = lambda x: (x[2] - x[0] + 1.) * (x[3] - x[1] + 1.)
    return inter / (area(a) + area(b) - inter)

  aps = []
  for label in range(1, num_classes + 1):
    g = [x for x in gt if x[1] == label]
    ignore = [x[3] or not low <= x[4] < high for x in g]
    npos = sum(not i for i in ignore)
    if npos == 0:
      continue
    used = [False] * len(g)
    d = sorted([x for x in dets if x[1] == label], key=lambda x: -x[3])  # stable
    tps, fps = [], []
    for image, _, box, _, area in d:
      best, jbest = -np.inf, -1
      for j, x in enumerate(g):
        if x[0] == image and iou(box, x[2]) > best:
          best, jbest = iou(box, x[2]), j
      if best >= 0.5 and ignore[jbest]:
        continue  # matched ignored ground truth
      if best >= 0.5 and not used[jbest]:
        used[jbest] = True
        tps.append(1.)
        fps.append(0.)
        continue
      if not low <= area < high:
        continue  # a false positive outside the bin
      tps.append(0.)
      fps.append(1.)
    tp, fp = np.cumsum(tps), np.cumsum(fps)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, 1e-300)
    ap = 0.
    for t in np.arange(0., 1.1, 0.1):
      ap += (max(prec[rec >= t]) if (rec >= t).any() else 0.) / 11.
    aps.append(ap)
  return float(np.mean(aps)) if aps else float('nan')


def _batch(gt_boxes, gt_labels, orig_size, difficult=None):
  n, m = np.asarray(gt_labels).shape
  return {'boxes': np.asarray(gt_boxes, np.float32), 'labels': np.asarray(gt_labels),
          'mask': np.asarray(gt_labels) > 0,
          'difficult': np.zeros((n, m), bool) if difficult is None else np.asarray(difficult),
          'image_id': np.arange(n), 'orig_size': np.asarray(orig_size)}


def test_hand_made_case():
  """One class in a 100x100 image: a 5x5 and a 50x50 object, four detections.

  small: B finds the small object (tp), C is a small false positive (counted), A (on the large
  object) and D (a large false positive) are ignored: precision 1 at recall 1, AP 1.
  large: D (fp, score 0.95) then A (tp): precision 1/2 at recall 1, AP 0.5; B (on the small
  object) and C (small) are ignored. medium: no ground truth, nan. All sizes: 2/3.
  """
  evaluator = voc.VocEvaluator(['thing'])
  batch = _batch([[[0.1, 0.1, 0.15, 0.15], [0.4, 0.4, 0.9, 0.9]]], [[1, 1]], [[100, 100]])
  dets = {'boxes': np.asarray([[[0.4, 0.4, 0.9, 0.9], [0.1, 0.1, 0.15, 0.15],
                                [0.0, 0.8, 0.05, 0.85], [0.0, 0.0, 0.35, 0.35]]]),
          'scores': np.asarray([[0.9, 0.8, 0.7, 0.95]]), 'classes': np.ones((1, 4), int),
          'valid': np.ones((1, 4), bool)}
  evaluator.add_batch(batch, dets)
  metrics = evaluator.result()
  assert metrics['mAP_small'] == pytest.approx(1.0)
  assert metrics['mAP_large'] == pytest.approx(0.5)
  assert np.isnan(metrics['mAP_medium'])
  assert metrics['mAP'] == pytest.approx(2 / 3)


@pytest.mark.parametrize('seed', range(6))
def test_equals_brute_force_on_random_cases(seed):
  rng = np.random.default_rng(seed)
  num_classes, images = 3, 5
  sizes = rng.integers(60, 200, (images, 2)).astype(np.float64)  # (height, width)

  def random_boxes(n, image):
    h, w = sizes[image]
    side = rng.choice([0.05, 0.2, 0.5], size=(n, 1)) * rng.uniform(0.7, 1.4, (n, 2))
    low = rng.uniform(0, 1 - side)
    return np.concatenate([low[:, :1] * w + 1, low[:, 1:] * h + 1,
                           (low[:, :1] + side[:, :1]) * w + 1,
                           (low[:, 1:] + side[:, 1:]) * h + 1], axis=1).round()

  gt, dets = [], []
  for image in range(images):
    boxes = random_boxes(6, image)
    for box in boxes:
      gt.append((image, int(rng.integers(1, num_classes + 1)), box, bool(rng.random() < 0.15)))
    for box in np.concatenate([boxes + rng.normal(0, 2, boxes.shape), random_boxes(4, image)]):
      box = np.concatenate([box[:2], np.maximum(box[2:], box[:2])])
      dets.append((image, int(rng.integers(1, num_classes + 1)), box,
                   float(rng.choice([0.3, 0.5, 0.9]) if rng.random() < 0.3 else rng.random())))
  gt_area = size_bins.relative_area([x[2] for x in gt], sizes[[x[0] for x in gt]])
  det_area = size_bins.relative_area([x[2] for x in dets], sizes[[x[0] for x in dets]])
  ground_truth = devkit.VocGroundTruth(*(np.asarray([x[i] for x in gt]) for i in range(4)))
  detections = devkit.VocDetections(np.asarray([x[0] for x in dets]),
                                    np.asarray([x[1] for x in dets]),
                                    np.asarray([x[2] for x in dets]),
                                    np.asarray([x[3] for x in dets]))
  metrics = size_bins.evaluate_by_size(ground_truth, detections, gt_area, det_area,
                                       ['a', 'b', 'c'])
  for name, low, high in size_bins.SIZE_BINS:
    expected = brute_force_bin_ap([(*x, a) for x, a in zip(gt, gt_area)],
                                  [(*x, a) for x, a in zip(dets, det_area)], low, high,
                                  num_classes)
    if np.isnan(expected):
      assert np.isnan(metrics[f'mAP_{name}'])
    else:
      assert metrics[f'mAP_{name}'] == pytest.approx(expected, abs=1e-12), name
  # One bin spanning all sizes is the plain devkit mAP.
  everything = size_bins.evaluate_by_size(ground_truth, detections, gt_area, det_area,
                                          ['a', 'b', 'c'], bins=(('all', 0., np.inf),))
  assert everything['mAP_all'] == pytest.approx(
      voc.evaluate_voc(ground_truth, detections, ['a', 'b', 'c']).metrics['mAP'], abs=1e-12)
