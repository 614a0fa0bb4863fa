"""Tests of ssd_jax.evaluation.coco against pycocotools' COCOeval called directly."""

import contextlib
import io
import json
import math
import os
import tempfile

from absl.testing import absltest
import numpy as np
from pycocotools import coco as coco_lib
from pycocotools import cocoeval

from ssd_jax.evaluation import coco

CATEGORIES = [{'id': 1, 'name': 'person'}, {'id': 3, 'name': 'car'}, {'id': 7, 'name': 'dog'}]
SIZES = {11: (480, 640), 12: (427, 640), 15: (640, 480), 20: (300, 300), 21: (500, 375)}


def make_dataset(seed=0):
  """A small instances dict (box areas as `area`, one crowd box) and detections near it."""
  rng = np.random.default_rng(seed)
  images, annotations, detections = [], [], []
  for image_id, (height, width) in SIZES.items():
    images.append({'id': image_id, 'height': height, 'width': width,
                   'file_name': f'{image_id}.jpg'})
    for _ in range(rng.integers(1, 7)):
      w, h = rng.uniform(4, width / 2), rng.uniform(4, height / 2)  # Small to large.
      x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
      cat = int(rng.choice([1, 3, 7], p=[0.5, 0.3, 0.2]))
      annotations.append({'id': len(annotations) + 1, 'image_id': image_id, 'category_id': cat,
                          'bbox': [x, y, w, h], 'area': w * h,
                          'iscrowd': int(rng.random() < 0.1)})
      for _ in range(rng.integers(0, 3)):
        jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
        box = [x + jitter[0], y + jitter[1], max(w + jitter[2], 1.), max(h + jitter[3], 1.)]
        detections.append({'image_id': image_id, 'category_id': cat, 'bbox': box,
                           'score': float(rng.random())})
    for _ in range(rng.integers(0, 4)):
      w, h = rng.uniform(4, width / 3), rng.uniform(4, height / 3)
      detections.append({'image_id': image_id, 'category_id': int(rng.choice([1, 3, 7])),
                         'bbox': [rng.uniform(0, width - w), rng.uniform(0, height - h), w, h],
                         'score': float(rng.random())})
  return {'images': images, 'annotations': annotations, 'categories': CATEGORIES}, detections


def pycocotools_stats(dataset, detections, image_ids=None, cat_ids=None):
  """The reference: COCO, loadRes, COCOeval evaluate/accumulate/summarize, straight."""
  with contextlib.redirect_stdout(io.StringIO()):
    gt = coco_lib.COCO()
    gt.dataset = json.loads(json.dumps(dataset))
    gt.createIndex()
    dt = gt.loadRes(json.loads(json.dumps(detections)))
    e = cocoeval.COCOeval(gt, dt, 'bbox')
    if image_ids is not None:
      e.params.imgIds = image_ids
    if cat_ids is not None:
      e.params.catIds = cat_ids
    e.evaluate()
    e.accumulate()
    e.summarize()
  return e.stats


def to_batch(dataset, detections, image_ids, category_ids, max_boxes=8, max_dets=16):
  """The project's batch and detections dicts (normalized yxyx, 1-based labels) for images."""
  label_of = {c: i for i, c in enumerate(category_ids, start=1)}
  n = len(image_ids) + 1  # One padding example.
  batch = {'boxes': np.zeros((n, max_boxes, 4)), 'labels': np.zeros((n, max_boxes), np.int32),
           'mask': np.zeros((n, max_boxes), bool), 'crowd': np.zeros((n, max_boxes), bool),
           'difficult': np.zeros((n, max_boxes), bool),
           'image_id': np.array(list(image_ids) + [0], np.int64),
           'orig_size': np.ones((n, 2), np.int32), 'example_mask': np.arange(n) < n - 1}
  dets = {'boxes': np.zeros((n, max_dets, 4)), 'scores': np.zeros((n, max_dets)),
          'classes': np.ones((n, max_dets), np.int32), 'valid': np.zeros((n, max_dets), bool)}
  for row, image_id in enumerate(image_ids):
    height, width = SIZES[image_id]
    batch['orig_size'][row] = height, width

    def norm(b, height=height, width=width):
      return [b[1] / height, b[0] / width, (b[1] + b[3]) / height, (b[0] + b[2]) / width]
    anns = [a for a in dataset['annotations'] if a['image_id'] == image_id]
    for j, a in enumerate(anns):
      batch['boxes'][row, j] = norm(a['bbox'])
      batch['labels'][row, j] = label_of[a['category_id']]
      batch['crowd'][row, j] = bool(a['iscrowd'])
      batch['mask'][row, j] = not a['iscrowd']
    for j, d in enumerate([d for d in detections if d['image_id'] == image_id]):
      dets['boxes'][row, j] = norm(d['bbox'])
      dets['scores'][row, j] = d['score']
      dets['classes'][row, j] = label_of[d['category_id']]
      dets['valid'][row, j] = True
  dets['valid'][n - 1] = True  # Padding example: must be ignored.
  return batch, dets


class CocoEvaluateTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dataset, self.detections = make_dataset()
    self.gt = coco.coco_from_dataset(json.loads(json.dumps(self.dataset)))

  def test_stats_equal_pycocotools(self):
    result = coco.coco_evaluate(self.gt, self.detections)
    expected = pycocotools_stats(self.dataset, self.detections)
    self.assertEqual([result.metrics[name] for name in coco.STAT_NAMES], list(expected))
    self.assertEqual(result.metrics['mAP'], expected[0])
    self.assertIn('Average Precision', result.summary)

  def test_per_class_ap_equals_single_category_cocoeval(self):
    result = coco.coco_evaluate(self.gt, self.detections)
    for cat in CATEGORIES:
      stats = pycocotools_stats(self.dataset, self.detections, cat_ids=[cat['id']])
      self.assertAlmostEqual(result.metrics[f'AP/{cat["name"]}'], stats[0], places=12)
      self.assertAlmostEqual(result.metrics[f'AP50/{cat["name"]}'], stats[1], places=12)

  def test_detections_are_not_modified(self):
    before = json.dumps(self.detections)
    coco.coco_evaluate(self.gt, self.detections)
    self.assertEqual(json.dumps(self.detections), before)

  def test_empty_detections_give_zero_with_warning(self):
    with self.assertLogs(level='WARNING') as logs:
      result = coco.coco_evaluate(self.gt, [])
    self.assertIn('No detections', logs.output[0])
    self.assertEqual(result.metrics['AP'], 0.0)
    self.assertEqual(result.metrics['AR100'], 0.0)

  def test_bad_detections(self):
    good = self.detections[0]
    cases = [({**good, 'image_id': 999}, 'image_id 999'),
             ({**good, 'category_id': 2}, 'category_id 2'),
             ({**good, 'bbox': [1, float('nan'), 3, 4]}, 'bad bbox'),
             ({**good, 'bbox': [1, 2, -3, 4]}, 'negative width'),
             ({k: v for k, v in good.items() if k != 'score'}, 'is not a COCO result')]
    for det, message in cases:
      with self.assertRaisesRegex(ValueError, message):
        coco.coco_evaluate(self.gt, [good, det])

  def test_missing_file(self):
    with self.assertRaisesRegex(FileNotFoundError, 'not found: /nonexistent.json'):
      coco.load_coco('/nonexistent.json')


class CocoEvaluatorTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dataset, self.detections = make_dataset(1)
    self.category_ids = [1, 3, 7]
    self.names = ['person', 'car', 'dog']

  def test_ground_truth_built_from_batches(self):
    # Areas in the dataset are box areas, so the in-memory ground truth matches it.
    evaluator = coco.CocoEvaluator(self.names, self.category_ids)
    evaluator.add_batch(*to_batch(self.dataset, self.detections, [11, 12, 15], self.category_ids))
    evaluator.add_batch(*to_batch(self.dataset, self.detections, [20, 21], self.category_ids))
    metrics = evaluator.result()
    expected = pycocotools_stats(self.dataset, self.detections)
    np.testing.assert_allclose([metrics[name] for name in coco.STAT_NAMES], expected,
                               rtol=0, atol=1e-12)
    self.assertEqual(len(evaluator.ground_truth().getAnnIds()), len(self.dataset['annotations']))

  def test_annotation_file_and_image_subset(self):
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'instances.json')
      with open(path, 'w') as f:
        json.dump(self.dataset, f)
      evaluator = coco.CocoEvaluator(self.names, self.category_ids, annotation_file=path)
      evaluator.add_batch(*to_batch(self.dataset, self.detections, [11, 15], self.category_ids))
      metrics = evaluator.result()
    subset = [d for d in self.detections if d['image_id'] in (11, 15)]
    expected = pycocotools_stats(self.dataset, subset, image_ids=[11, 15])
    np.testing.assert_allclose([metrics[name] for name in coco.STAT_NAMES], expected,
                               rtol=0, atol=1e-12)

  def test_default_category_ids_and_class_without_ground_truth(self):
    evaluator = coco.CocoEvaluator(['a', 'b', 'c', 'unused'])
    batch, dets = to_batch(self.dataset, self.detections, [11, 12], self.category_ids)
    evaluator.add_batch(batch, dets)
    result = evaluator.evaluate()
    self.assertTrue(math.isnan(result.metrics['AP/unused']))
    self.assertEqual(result.num_ground_truth['unused'], 0)

  def test_no_images(self):
    with self.assertRaisesRegex(ValueError, 'no images'):
      coco.CocoEvaluator(self.names).result()


if __name__ == '__main__':
  absltest.main()
