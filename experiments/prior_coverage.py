r"""How well a config's default boxes cover a data set's ground truth, by object size.

  python -m experiments.prior_coverage --config=configs/shapes.py [--num_images=500] \
      [--thresholds=0.5,0.3] [--output=prior_coverage.json]

Reads the eval split through the eval pipeline (non-difficult, non-crowd ground truth) and
reports, for each IoU threshold and per bucket of the box's longer side (fraction of the
image side): the mean number of default boxes with IoU >= threshold per object (what the
matcher makes positive, before its one forced match per object) and the fraction of objects
that have at least one. Few positives per object means a sparse training signal: with
SSD300's boxes at 300x300, shapes objects get ~7.6 priors at IoU 0.5; at 128x128 with the
paper's rule they got ~1.1, which is why `configs/shapes.py` sets its own boxes and
threshold. Runs in seconds on a CPU; no model is built.
"""

import json

from absl import flags
from ml_collections import config_flags
import numpy as np
import tensorflow_datasets as tfds

from ssd_jax import box_ops
from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax import file_io
from ssd_jax import models
from ssd_jax.data import input_pipeline

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program, so that other programs,
  e.g. experiments/sweep.py, can import `eval_ground_truth` and `coverage_by_size`)."""
  config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=False)
  flags.DEFINE_integer('num_images', 500, 'Eval images to read (first N).')
  flags.DEFINE_list('thresholds', None, 'IoU thresholds; default: 0.5 and the config\'s.')
  flags.DEFINE_string('output', 'prior_coverage.json', 'Where to write the figures.')


SIZE_BUCKETS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 1.0))  # longer side / image side


def coverage_by_size(gt_boxes: np.ndarray, priors_cyxhw: np.ndarray, threshold: float,
                     buckets=SIZE_BUCKETS) -> list[dict]:
  """How densely default boxes cover ground truth, per bucket of the box's longer side.

  Args:
    gt_boxes: [N, 4] normalized yxyx.
    priors_cyxhw: [P, 4] default boxes.
    threshold: IoU from which a default box counts (the matcher's positive threshold).
    buckets: (low, high) ranges of the longer side as a fraction of the image side.

  Returns:
    One row per bucket, after an 'all' row: {'size', 'objects', 'priors_per_object' (mean
    number of default boxes with IoU >= threshold), 'covered' (share of objects with at least
    one)}; nan where a bucket is empty.
  """
  priors = np.asarray(box_ops.cyxhw_to_yxyx(priors_cyxhw))
  iou = np.asarray(box_ops.pairwise_iou(gt_boxes, priors))  # [N, P]
  hits = (iou >= threshold).sum(axis=1)
  longer = np.maximum(gt_boxes[:, 2] - gt_boxes[:, 0], gt_boxes[:, 3] - gt_boxes[:, 1])
  rows = []
  for name, sel in [('all', np.ones(len(gt_boxes), bool))] + [
      (f'{lo:.1f}-{hi:.1f}', (longer >= lo) & (longer < hi)) for lo, hi in buckets]:
    n = int(sel.sum())
    rows.append({'size': name, 'objects': n,
                 'priors_per_object': float(hits[sel].mean()) if n else float('nan'),
                 'covered': float((hits[sel] > 0).mean()) if n else float('nan')})
  return rows


def eval_ground_truth(config, num_images: int) -> np.ndarray:
  """[N, 4] non-difficult, non-crowd ground truth of the first `num_images` eval images."""
  config.eval.num_images = num_images
  boxes = []
  for batch in tfds.as_numpy(input_pipeline.create_eval_dataset(config)):
    keep = (batch['mask'] & ~batch['difficult'] & ~batch['crowd'] &
            batch['example_mask'][:, None])
    boxes.append(batch['boxes'][keep])
  return np.concatenate(boxes).astype(np.float64)


def main(argv):
  del argv
  config = config_keys.from_command_line(FLAGS.config)
  thresholds = ([float(t) for t in FLAGS.thresholds] if FLAGS.thresholds else
                sorted({0.5, float(config.loss.iou_threshold)}, reverse=True))
  gt = eval_ground_truth(config, FLAGS.num_images)
  priors = models.default_boxes(config).boxes
  print(f'{len(priors)} default boxes; {len(gt)} objects in {FLAGS.num_images} images '
        f'of {config.input.dataset}')
  result = {'num_priors': len(priors), 'num_objects': len(gt), 'by_threshold': {}}
  for t in thresholds:
    rows = coverage_by_size(gt, priors, t)
    result['by_threshold'][str(t)] = rows
    print(f'\nIoU >= {t}:\n{"size":<10} {"objects":>8} {"priors/object":>14} {"covered":>8}')
    for r in rows:
      print(f'{r["size"]:<10} {r["objects"]:>8} {r["priors_per_object"]:>14.2f} '
            f'{r["covered"]:>8.2f}')
  file_io.write_text(FLAGS.output, json.dumps(result, indent=2))
  print(f'\nwrote {FLAGS.output}')


if __name__ == '__main__':
  define_flags()
  flags.mark_flags_as_required(['config'])
  cli.run(main)
