"""Tests of ssd_jax.evaluation.voc against hand-computed APs and a loop port of voc_eval.py."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from ssd_jax.evaluation import devkit
from ssd_jax.evaluation import pixel_boxes
from ssd_jax.evaluation import result as result_lib
from ssd_jax.evaluation import voc


# --- Reference: py-faster-rcnn's voc_eval.py, ported line by line ------------------------------
# Two marked changes make it the official devkit's rule (VOCevaldet.m): `>=` for the overlap
# test (`strict=True` restores voc_eval.py's `>`) and a stable score sort (MATLAB's sort).


def reference_voc_ap(rec, prec, use_07_metric=False):
  if use_07_metric:
    ap = 0.
    for t in np.arange(0., 1.1, 0.1):
      if np.sum(rec >= t) == 0:
        p = 0
      else:
        p = np.max(prec[rec >= t])
      ap = ap + p / 11.
  else:
    mrec = np.concatenate(([0.], rec, [1.]))
    mpre = np.concatenate(([0.], prec, [0.]))
    for i in range(mpre.size - 1, 0, -1):
      mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
  return ap


def reference_voc_eval(recs, dets, classname, ovthresh=0.5, use_07_metric=False, strict=False):
  """recs: {image: [{'name', 'bbox', 'difficult'}]}; dets: [(image, score, xmin, ymin, xmax,
  ymax)] of this class. Returns (rec, prec, ap)."""
  class_recs = {}
  npos = 0
  for imagename in recs:
    R = [obj for obj in recs[imagename] if obj['name'] == classname]
    bbox = np.array([x['bbox'] for x in R])
    difficult = np.array([x['difficult'] for x in R]).astype(bool)
    det = [False] * len(R)
    npos = npos + sum(~difficult)
    class_recs[imagename] = {'bbox': bbox, 'difficult': difficult, 'det': det}

  image_ids = [x[0] for x in dets]
  confidence = np.array([float(x[1]) for x in dets])
  BB = np.array([[float(z) for z in x[2:]] for x in dets]).reshape(-1, 4)
  sorted_ind = np.argsort(-confidence, kind='stable')  # Changed: stable, as the devkit.
  BB = BB[sorted_ind, :]
  image_ids = [image_ids[x] for x in sorted_ind]

  nd = len(image_ids)
  tp = np.zeros(nd)
  fp = np.zeros(nd)
  for d in range(nd):
    R = class_recs[image_ids[d]]
    bb = BB[d, :].astype(float)
    ovmax = -np.inf
    BBGT = R['bbox'].astype(float)
    if BBGT.size > 0:
      ixmin = np.maximum(BBGT[:, 0], bb[0])
      iymin = np.maximum(BBGT[:, 1], bb[1])
      ixmax = np.minimum(BBGT[:, 2], bb[2])
      iymax = np.minimum(BBGT[:, 3], bb[3])
      iw = np.maximum(ixmax - ixmin + 1., 0.)
      ih = np.maximum(iymax - iymin + 1., 0.)
      inters = iw * ih
      uni = ((bb[2] - bb[0] + 1.) * (bb[3] - bb[1] + 1.) +
             (BBGT[:, 2] - BBGT[:, 0] + 1.) *
             (BBGT[:, 3] - BBGT[:, 1] + 1.) - inters)
      overlaps = inters / uni
      ovmax = np.max(overlaps)
      jmax = np.argmax(overlaps)
    if (ovmax > ovthresh) if strict else (ovmax >= ovthresh):  # Changed: devkit's >=.
      if not R['difficult'][jmax]:
        if not R['det'][jmax]:
          tp[d] = 1.
          R['det'][jmax] = 1
        else:
          fp[d] = 1.
    else:
      fp[d] = 1.
  fp = np.cumsum(fp)
  tp = np.cumsum(tp)
  rec = tp / float(npos)
  prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
  ap = reference_voc_ap(rec, prec, use_07_metric)
  return rec, prec, ap


# --- Helpers -----------------------------------------------------------------------------------

CLASSES = ('cat', 'dog', 'bird')


def make_inputs(gt_list, det_list):
  """gt_list: [(image, label, box, difficult)], det_list: [(image, label, box, score)]."""
  gt = devkit.VocGroundTruth(
      image=np.array([g[0] for g in gt_list], np.int64),
      label=np.array([g[1] for g in gt_list], np.int64),
      boxes=np.array([g[2] for g in gt_list], np.float64).reshape(-1, 4),
      difficult=np.array([g[3] for g in gt_list], bool))
  det = devkit.VocDetections(
      image=np.array([d[0] for d in det_list], np.int64),
      label=np.array([d[1] for d in det_list], np.int64),
      boxes=np.array([d[2] for d in det_list], np.float64).reshape(-1, 4),
      scores=np.array([d[3] for d in det_list], np.float64))
  return gt, det


def random_case(seed, num_images=25, integer_dets=False, tied_scores=False):
  """Random ground truth (integer devkit boxes, some difficult) and detections near it."""
  rng = np.random.default_rng(seed)
  gt_list, det_list = [], []
  for image in range(num_images):
    for _ in range(rng.integers(0, 6)):
      x0, y0 = rng.integers(1, 300, size=2)
      w, h = rng.integers(5, 120, size=2)
      label = int(rng.integers(1, len(CLASSES) + 1))
      box = [x0, y0, x0 + w, y0 + h]
      gt_list.append((image, label, box, bool(rng.random() < 0.15)))
      for _ in range(rng.integers(0, 4)):  # Jittered detections, some duplicates.
        jitter = rng.normal(0, 0.15, 4) * [w, h, w, h]
        det = np.array(box, np.float64) + jitter
        det[2:] = np.maximum(det[2:], det[:2])
        det_label = label if rng.random() < 0.85 else int(rng.integers(1, len(CLASSES) + 1))
        det_list.append([image, det_label, det, rng.random()])
    for _ in range(rng.integers(0, 5)):  # Background detections.
      x0, y0 = rng.uniform(1, 300, size=2)
      w, h = rng.uniform(2, 100, size=2)
      det_list.append([image, int(rng.integers(1, len(CLASSES) + 1)), [x0, y0, x0 + w, y0 + h],
                       rng.random()])
  for d in det_list:
    if integer_dets:
      d[2] = np.round(d[2])
    if tied_scores:
      d[3] = round(d[3], 1)
  return gt_list, [tuple(d) for d in det_list]


def reference_aps(gt_list, det_list, use_07_metric, strict=False):
  images = sorted({g[0] for g in gt_list} | {d[0] for d in det_list})
  recs = {i: [] for i in images}
  for image, label, box, difficult in gt_list:
    recs[image].append({'name': CLASSES[label - 1], 'bbox': list(box), 'difficult': difficult})
  aps = {}
  for label, name in enumerate(CLASSES, start=1):
    dets = [(d[0], d[3], *d[2]) for d in det_list if d[1] == label]
    aps[name] = reference_voc_eval(recs, dets, name, use_07_metric=use_07_metric,
                                   strict=strict)[2]
  return aps


class VocApTest(parameterized.TestCase):
  # The 11-point AP of a perfect curve is 11 * (1 / 11) = 1.0000000000000002, in voc_eval.py too:
  # hand-computed values are compared to 12 places.

  def assert_metrics(self, metrics, expected):
    self.assertEqual(metrics.keys(), expected.keys())
    for key, value in expected.items():
      if math.isnan(value):
        self.assertTrue(math.isnan(metrics[key]), key)
      else:
        self.assertAlmostEqual(metrics[key], value, places=12, msg=key)

  @parameterized.parameters(True, False)
  def test_perfect_detections_give_one(self, use_07):
    gt, det = make_inputs(
        [(0, 1, [1, 1, 50, 50], False), (0, 2, [60, 60, 90, 99], False),
         (1, 1, [10, 20, 30, 40], False)],
        [(0, 1, [1, 1, 50, 50], 0.9), (0, 2, [60, 60, 90, 99], 0.8),
         (1, 1, [10, 20, 30, 40], 0.7)])
    metrics = voc.evaluate_voc(gt, det, CLASSES[:2], use_07).metrics
    self.assert_metrics(metrics, {'mAP': 1.0, 'AP/cat': 1.0, 'AP/dog': 1.0})

  @parameterized.parameters(True, False)
  def test_all_false_gives_zero(self, use_07):
    gt, det = make_inputs(
        [(0, 1, [1, 1, 50, 50], False)],
        [(0, 1, [100, 100, 150, 150], 0.9), (0, 2, [1, 1, 50, 50], 0.8),
         (1, 1, [1, 1, 50, 50], 0.7)])
    metrics = voc.evaluate_voc(gt, det, CLASSES[:2], use_07).metrics
    self.assertEqual(metrics['AP/cat'], 0.0)

  @parameterized.parameters((True, (6 + 5 * 2 / 3) / 11), (False, 0.5 + 0.5 * 2 / 3))
  def test_duplicate_is_false_positive(self, use_07, expected):
    # TP (0.9), its duplicate (0.8), TP in image 1 (0.7): precision 1, 1/2, 2/3; recall .5, .5, 1.
    gt, det = make_inputs(
        [(0, 1, [1, 1, 50, 50], False), (1, 1, [1, 1, 50, 50], False)],
        [(0, 1, [1, 1, 50, 50], 0.9), (0, 1, [2, 2, 51, 51], 0.8),
         (1, 1, [1, 1, 49, 50], 0.7)])
    self.assertAlmostEqual(voc.evaluate_voc(gt, det, CLASSES[:1], use_07).metrics['AP/cat'],
                           expected, places=12)

  @parameterized.parameters(True, False)
  def test_difficult_is_ignored(self, use_07):
    # Image 1 has only a difficult cat: the top detection on it neither helps nor hurts.
    gt, det = make_inputs(
        [(0, 1, [1, 1, 50, 50], False), (1, 1, [1, 1, 50, 50], True),
         (1, 2, [5, 5, 60, 60], True)],
        [(1, 1, [1, 1, 50, 50], 0.95), (0, 1, [1, 1, 50, 50], 0.9),
         (1, 1, [2, 1, 50, 50], 0.85), (1, 2, [5, 5, 60, 60], 0.5)])
    result = voc.evaluate_voc(gt, det, CLASSES[:2], use_07)
    # 'dog' has only difficult ground truth: AP nan, left out of the mean.
    self.assert_metrics(result.metrics, {'mAP': 1.0, 'AP/cat': 1.0, 'AP/dog': math.nan})
    self.assertEqual(result.num_ground_truth, {'cat': 1, 'dog': 0})
    self.assertEqual(result.num_detections, {'cat': 3, 'dog': 1})

  def test_class_without_ground_truth_is_nan_and_left_out_of_mean(self):
    gt, det = make_inputs([(0, 1, [1, 1, 50, 50], False)],
                          [(0, 1, [1, 1, 50, 50], 0.9), (0, 3, [1, 1, 50, 50], 0.99)])
    metrics = voc.evaluate_voc(gt, det, CLASSES).metrics
    self.assert_metrics(metrics, {'mAP': 1.0, 'AP/cat': 1.0, 'AP/dog': math.nan,
                                  'AP/bird': math.nan})

  def test_tied_scores_keep_input_order(self):
    # A false positive and a true positive with the same score: the one listed first ranks first.
    fp_box, tp_box = [100, 100, 150, 150], [1, 1, 50, 50]
    gt, det = make_inputs([(0, 1, tp_box, False)], [(0, 1, fp_box, 0.5), (0, 1, tp_box, 0.5)])
    self.assertEqual(voc.evaluate_voc(gt, det, CLASSES[:1], False).metrics['AP/cat'], 0.5)
    gt, det = make_inputs([(0, 1, tp_box, False)], [(0, 1, tp_box, 0.5), (0, 1, fp_box, 0.5)])
    self.assertEqual(voc.evaluate_voc(gt, det, CLASSES[:1], False).metrics['AP/cat'], 1.0)

  def test_iou_of_exactly_half_matches(self):
    # 10x10 pixels inside 10x20 pixels (devkit +1 widths): IoU = 100 / 200 = 0.5 exactly.
    gt_list, det_list = [(0, 1, [1, 1, 10, 10], False)], [(0, 1, [1, 1, 10, 20], 0.9)]
    gt, det = make_inputs(gt_list, det_list)
    self.assertEqual(devkit.devkit_iou(det.boxes[0], gt.boxes[0]), 0.5)
    self.assertAlmostEqual(voc.evaluate_voc(gt, det, CLASSES[:1]).metrics['AP/cat'], 1.0,
                           places=12)
    # voc_eval.py's strict `>` would call it a false positive: the one documented difference.
    self.assertEqual(reference_aps(gt_list, det_list, True, strict=True)['cat'], 0.0)

  def test_images_without_ground_truth_and_no_detections(self):
    gt, det = make_inputs([(3, 1, [1, 1, 50, 50], False)], [])
    metrics = voc.evaluate_voc(gt, det, CLASSES[:1]).metrics
    self.assertEqual(metrics, {'mAP': 0.0, 'AP/cat': 0.0})

  def test_voc_ap_known_curve(self):
    recall = np.array([0.25, 0.5, 0.5, 0.75])
    precision = np.array([1.0, 1.0, 2 / 3, 0.75])
    self.assertAlmostEqual(devkit.voc_ap(recall, precision, False), 0.5 + 0.25 * 0.75, places=14)
    # 11-point: t <= .5 -> 1 (6 points), t in .6, .7 -> .75, t >= .8 -> 0.
    self.assertAlmostEqual(devkit.voc_ap(recall, precision, True), (6 + 2 * 0.75) / 11, places=14)


class VocAgainstReferenceTest(parameterized.TestCase):

  @parameterized.product(use_07=(True, False), seed=tuple(range(8)),
                         variant=('plain', 'integer_dets', 'tied_scores'))
  def test_matches_loop_reference(self, use_07, seed, variant):
    gt_list, det_list = random_case(seed, integer_dets=variant == 'integer_dets',
                                    tied_scores=variant == 'tied_scores')
    gt, det = make_inputs(gt_list, det_list)
    metrics = voc.evaluate_voc(gt, det, CLASSES, use_07).metrics
    expected = reference_aps(gt_list, det_list, use_07)
    for name in CLASSES:
      if math.isnan(metrics[f'AP/{name}']):  # No ground truth: the reference divides by 0.
        self.assertEqual(sum(not g[3] for g in gt_list if CLASSES[g[1] - 1] == name), 0)
        continue
      self.assertAlmostEqual(metrics[f'AP/{name}'], expected[name], delta=1e-12)

  def test_matches_reference_curves_and_many_boxes_per_image(self):
    # More ground truth per image than one chunk row, and small chunks.
    gt_list, det_list = random_case(99, num_images=4)
    gt, det = make_inputs(gt_list, det_list)
    for label, name in enumerate(CLASSES, start=1):
      in_gt, in_det = gt.label == label, det.label == label
      tp, fp = devkit.match_class(det.image[in_det], det.boxes[in_det], det.scores[in_det],
                                  gt.image[in_gt], gt.boxes[in_gt], gt.difficult[in_gt])
      npos = int((~gt.difficult[in_gt]).sum())
      recall, precision = devkit.precision_recall(tp, fp, npos)
      images = sorted({g[0] for g in gt_list} | {d[0] for d in det_list})
      recs = {i: [] for i in images}
      for image, lab, box, difficult in gt_list:
        recs[image].append({'name': CLASSES[lab - 1], 'bbox': list(box), 'difficult': difficult})
      dets = [(d[0], d[3], *d[2]) for d in det_list if d[1] == label]
      ref_rec, ref_prec, _ = reference_voc_eval(recs, dets, name)
      np.testing.assert_array_equal(recall, ref_rec)
      np.testing.assert_array_equal(precision, ref_prec)


class VocEvaluatorTest(absltest.TestCase):

  def _batches(self):
    """Two batches of devkit boxes normalized as tfds voc does, the last one padded."""
    gt_list, det_list = random_case(5, num_images=7)
    sizes = np.array([[375, 500], [333, 500], [500, 375], [480, 640], [375, 500], [400, 400],
                      [500, 500]], np.int32)
    batches = []
    for start, stop in ((0, 4), (4, 7)):
      n, m, k = 4, 8, 12
      batch = {'boxes': np.zeros((n, m, 4), np.float32), 'labels': np.zeros((n, m), np.int32),
               'mask': np.zeros((n, m), bool), 'difficult': np.zeros((n, m), bool),
               'crowd': np.zeros((n, m), bool),
               'image_id': np.array([f'{i:06d}'.encode() for i in range(start, start + n)]),
               'orig_size': np.ones((n, 2), np.int32), 'example_mask': np.zeros(n, bool)}
      dets = {'boxes': np.zeros((n, k, 4), np.float32), 'scores': np.zeros((n, k), np.float32),
              'classes': np.ones((n, k), np.int32), 'valid': np.zeros((n, k), bool)}
      for row, image in enumerate(range(start, stop)):
        batch['orig_size'][row] = sizes[image]
        batch['example_mask'][row] = True
        for j, g in enumerate([g for g in gt_list if g[0] == image]):
          batch['boxes'][row, j] = pixel_boxes.devkit_xyxy_to_yxyx(g[2], sizes[image])
          batch['labels'][row, j] = g[1]
          batch['mask'][row, j] = True
          batch['difficult'][row, j] = g[3]
        for j, d in enumerate([d for d in det_list if d[0] == image][:k]):
          dets['boxes'][row, j] = pixel_boxes.devkit_xyxy_to_yxyx(d[2], sizes[image])
          dets['scores'][row, j] = d[3]
          dets['classes'][row, j] = d[1]
          dets['valid'][row, j] = True
      # Padding rows carry garbage that must be ignored.
      batch['labels'][stop - start:] = 1
      batch['mask'][stop - start:] = True
      dets['valid'][stop - start:] = True
      batches.append((batch, dets))
    return batches

  def test_evaluator_equals_evaluate_voc_on_pixel_boxes(self):
    evaluator = voc.VocEvaluator(CLASSES, use_07_metric=False)
    expected_gt, expected_det = [], []
    for batch, dets in self._batches():
      evaluator.add_batch(batch, dets)
      keep = batch['example_mask']
      size = batch['orig_size'][keep]
      gt_pix = np.round(pixel_boxes.yxyx_to_devkit_xyxy(batch['boxes'][keep], size))
      det_pix = pixel_boxes.yxyx_to_devkit_xyxy(dets['boxes'][keep], size)
      for row in range(int(keep.sum())):
        image = int(batch['image_id'][row])
        for j in np.flatnonzero(batch['labels'][row] > 0):
          expected_gt.append((image, batch['labels'][row, j], gt_pix[row, j],
                              batch['difficult'][row, j]))
        for j in np.flatnonzero(dets['valid'][row]):
          expected_det.append((image, dets['classes'][row, j], det_pix[row, j],
                               float(dets['scores'][row, j])))
    self.assertEqual(evaluator.image_ids, [f'{i:06d}' for i in range(7)])
    metrics = evaluator.result()
    expected = voc.evaluate_voc(*make_inputs(expected_gt, expected_det), CLASSES, False).metrics
    # The evaluator adds the size bins' mAP (tests/test_size_bins.py); the rest is bitwise
    # evaluate_voc's.
    self.assertEqual(set(metrics), set(expected) | {'mAP_small', 'mAP_medium', 'mAP_large'})
    for key in expected:
      np.testing.assert_equal(metrics[key], expected[key])
    # Rounding brings the tfds float32 round trip back to the devkit's integers exactly.
    gt_list, _ = random_case(5, num_images=7)
    np.testing.assert_array_equal(evaluator.ground_truth().boxes,
                                  np.array([g[2] for g in gt_list], np.float64))
    self.assertEqual(evaluator.ground_truth().boxes.shape[0], len(gt_list))
    self.assertLen(evaluator.detections_json(), len(expected_det))

  def test_empty_evaluator(self):
    metrics = voc.VocEvaluator(CLASSES).result()
    self.assertTrue(all(math.isnan(v) for v in metrics.values()))

  def test_table_lists_every_class(self):
    evaluator = voc.VocEvaluator(CLASSES)
    for batch, dets in self._batches():
      evaluator.add_batch(batch, dets)
    result = evaluator.evaluate()
    table = result_lib.format_table(result.metrics, CLASSES, result.num_ground_truth,
                                    result.num_detections)
    for name in CLASSES + ('mAP',):
      self.assertIn(name, table)


class VocBadInputTest(absltest.TestCase):

  def test_nan_box(self):
    gt, det = make_inputs([(0, 1, [1, 1, 5, 5], False)], [(0, 1, [1, np.nan, 5, 5], 0.5)])
    with self.assertRaisesRegex(ValueError, 'detection boxes have non-finite'):
      voc.evaluate_voc(gt, det, CLASSES)

  def test_negative_size_box(self):
    gt, det = make_inputs([(0, 1, [1, 1, 5, 5], False)], [(0, 1, [9, 1, 5, 5], 0.5)])
    with self.assertRaisesRegex(ValueError, 'negative size'):
      voc.evaluate_voc(gt, det, CLASSES)

  def test_nan_score(self):
    gt, det = make_inputs([(0, 1, [1, 1, 5, 5], False)], [(0, 1, [1, 1, 5, 5], np.nan)])
    with self.assertRaisesRegex(ValueError, 'scores are NaN'):
      voc.evaluate_voc(gt, det, CLASSES)

  def test_label_out_of_range(self):
    gt, det = make_inputs([(0, 1, [1, 1, 5, 5], False)], [(0, 4, [1, 1, 5, 5], 0.5)])
    with self.assertRaisesRegex(ValueError, r'outside 1\.\.3'):
      voc.evaluate_voc(gt, det, CLASSES)


if __name__ == '__main__':
  absltest.main()
