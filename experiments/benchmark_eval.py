r"""Speed of the VOC evaluation: 5,000 images x 200 detections (VOC07 test size).

  python -m experiments.benchmark_eval [--images=5000] [--detections=200] [--with_file]

Times `evaluate_voc` (both metrics), `VocEvaluator` fed with batches, and with --with_file the
command's path (detections json + devkit XMLs written to a temporary folder, then
`evaluate_files`).
"""

import json
import os
import tempfile
import time

from absl import flags
import numpy as np

from ssd_jax import cli
from ssd_jax import evaluation
from ssd_jax.evaluation import files

CLASSES = files.VOC_CLASSES


def make_data(num_images, num_dets, seed=0):
  """Devkit-like ground truth (~2.4 boxes per image) and detections near it and at random."""
  rng = np.random.default_rng(seed)
  num_gt = rng.poisson(2.4, num_images)
  gt_image = np.repeat(np.arange(num_images), num_gt)
  xy = rng.integers(1, 400, (gt_image.size, 2))
  wh = rng.integers(10, 200, (gt_image.size, 2))
  gt = evaluation.VocGroundTruth(
      image=gt_image, label=rng.integers(1, len(CLASSES) + 1, gt_image.size),
      boxes=np.concatenate([xy, xy + wh], 1).astype(np.float64),
      difficult=rng.random(gt_image.size) < 0.1)
  det_image = np.repeat(np.arange(num_images), num_dets)
  near = rng.random(det_image.size) < 0.3  # Jittered copies of a ground truth of the image.
  boxes = np.concatenate([rng.uniform(1, 400, (det_image.size, 2)),
                          rng.uniform(10, 200, (det_image.size, 2))], 1)
  boxes[:, 2:] += boxes[:, :2]
  labels = rng.integers(1, len(CLASSES) + 1, det_image.size)
  first = np.concatenate([[0], np.cumsum(num_gt)[:-1]])
  pick = near & (num_gt[det_image] > 0)
  src = first[det_image[pick]] + rng.integers(0, 1 << 30, pick.sum()) % num_gt[det_image[pick]]
  boxes[pick] = gt.boxes[src] + rng.normal(0, 8, (pick.sum(), 4))
  boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
  labels[pick] = gt.label[src]
  det = evaluation.VocDetections(image=det_image, label=labels, boxes=boxes,
                                 scores=rng.random(det_image.size))
  return gt, det


def timed(label, fn):
  start = time.perf_counter()
  out = fn()
  print(f'{label}: {time.perf_counter() - start:.2f} s')
  return out


def define_flags() -> None:
  """The command's flags (defined only when run as a program)."""
  flags.DEFINE_integer('images', 5000, 'Images (about 2.4 ground truth boxes each).')
  flags.DEFINE_integer('detections', 200, 'Detections per image.')
  flags.DEFINE_bool('with_file', False, 'Also time the command\'s path: devkit XMLs and a '
                    'detections json written to a temporary folder, then read and scored.')


def main(argv):
  del argv
  args = flags.FLAGS
  gt, det = make_data(args.images, args.detections)
  print(f'{args.images} images, {gt.image.size} ground truth, {det.image.size} detections')
  for metric in ('voc07', 'voc'):
    result = timed(f'evaluate_voc {metric}', lambda m=metric: evaluation.evaluate_voc(
        gt, det, CLASSES, use_07_metric=m == 'voc07'))
    print(f'  mAP {result.metrics["mAP"]:.4f}')

  # The training loop's path: batches of normalized boxes through VocEvaluator.
  size = np.array([500, 500])
  evaluator = evaluation.VocEvaluator(CLASSES)
  batch_size, max_boxes = 32, 64
  batches = []
  for start in range(0, args.images, batch_size):
    ids = np.arange(start, min(start + batch_size, args.images))
    b = {'boxes': np.zeros((batch_size, max_boxes, 4), np.float32),
         'labels': np.zeros((batch_size, max_boxes), np.int32),
         'mask': np.zeros((batch_size, max_boxes), bool),
         'difficult': np.zeros((batch_size, max_boxes), bool),
         'image_id': np.array([f'{i:06d}'.encode() for i in range(start, start + batch_size)]),
         'orig_size': np.tile(size, (batch_size, 1)).astype(np.int32),
         'example_mask': np.arange(batch_size) < ids.size}
    d = {'boxes': np.zeros((batch_size, args.detections, 4), np.float32),
         'scores': np.zeros((batch_size, args.detections), np.float32),
         'classes': np.ones((batch_size, args.detections), np.int32),
         'valid': np.zeros((batch_size, args.detections), bool)}
    for row, image in enumerate(ids):
      g = gt.image == image
      b['boxes'][row, :g.sum()] = evaluation.devkit_xyxy_to_yxyx(gt.boxes[g], size)
      b['labels'][row, :g.sum()] = gt.label[g]
      b['mask'][row, :g.sum()] = True
      b['difficult'][row, :g.sum()] = gt.difficult[g]
      s = slice(image * args.detections, (image + 1) * args.detections)
      d['boxes'][row] = evaluation.devkit_xyxy_to_yxyx(det.boxes[s], size)
      d['scores'][row], d['classes'][row], d['valid'][row] = det.scores[s], det.label[s], True
    batches.append((b, d))

  def run_evaluator():
    evaluator.reset()
    for b, d in batches:
      evaluator.add_batch(b, d)
    return evaluator.result()
  metrics = timed('VocEvaluator add_batch x %d + result' % len(batches), run_evaluator)
  print(f'  mAP {metrics["mAP"]:.4f}')

  if args.with_file:
    with tempfile.TemporaryDirectory() as tmp:
      os.makedirs(os.path.join(tmp, 'Annotations'))
      os.makedirs(os.path.join(tmp, 'ImageSets', 'Main'))
      names = [f'{i:06d}' for i in range(args.images)]
      with open(os.path.join(tmp, 'ImageSets', 'Main', 'test.txt'), 'w') as f:
        f.write('\n'.join(names) + '\n')
      for i, name in enumerate(names):
        objs = ''.join(
            f'<object><name>{CLASSES[l - 1]}</name><difficult>{int(dif)}</difficult><bndbox>'
            f'<xmin>{int(b[0])}</xmin><ymin>{int(b[1])}</ymin><xmax>{int(b[2])}</xmax>'
            f'<ymax>{int(b[3])}</ymax></bndbox></object>'
            for l, b, dif in zip(gt.label[gt.image == i], gt.boxes[gt.image == i],
                                 gt.difficult[gt.image == i]))
        with open(os.path.join(tmp, 'Annotations', f'{name}.xml'), 'w') as f:
          f.write(f'<annotation>{objs}</annotation>')
      xywh = np.concatenate([det.boxes[:, :2], det.boxes[:, 2:] - det.boxes[:, :2]], 1)
      entries = [{'image_id': names[i], 'category_id': CLASSES[c - 1], 'bbox': b, 'score': s}
                 for i, c, b, s in zip(det.image.tolist(), det.label.tolist(), xywh.tolist(),
                                       det.scores.tolist())]
      path = os.path.join(tmp, 'dets.json')
      with open(path, 'w') as f:
        json.dump(entries, f)
      del entries
      result = timed('evaluate_files voc07 (read XMLs + json + evaluate)',
                     lambda: evaluation.evaluate_files(tmp, path, 'voc07'))
      print(f'  mAP {result.metrics["mAP"]:.4f}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
