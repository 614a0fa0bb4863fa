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

from ssd_jax import anchors
from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax.data import input_pipeline

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program, so that other programs,
  e.g. experiments/sweep.py, can import `eval_ground_truth`)."""
  config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=False)
  flags.DEFINE_integer('num_images', 500, 'Eval images to read (first N).')
  flags.DEFINE_list('thresholds', None, 'IoU thresholds; default: 0.5 and the config\'s.')
  flags.DEFINE_string('output', 'prior_coverage.json', 'Where to write the figures.')


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
  priors = anchors.default_boxes(config)
  print(f'{len(priors)} default boxes; {len(gt)} objects in {FLAGS.num_images} images '
        f'of {config.input.dataset}')
  result = {'num_priors': len(priors), 'num_objects': len(gt), 'by_threshold': {}}
  for t in thresholds:
    rows = anchors.coverage_by_size(gt, priors, t)
    result['by_threshold'][str(t)] = rows
    print(f'\nIoU >= {t}:\n{"size":<10} {"objects":>8} {"priors/object":>14} {"covered":>8}')
    for r in rows:
      print(f'{r["size"]:<10} {r["objects"]:>8} {r["priors_per_object"]:>14.2f} '
            f'{r["covered"]:>8.2f}')
  with open(FLAGS.output, 'w') as f:
    json.dump(result, f, indent=2)
  print(f'\nwrote {FLAGS.output}')


if __name__ == '__main__':
  define_flags()
  flags.mark_flags_as_required(['config'])
  cli.run(main)
