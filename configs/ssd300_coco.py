"""SSD300 on COCO 2017 (trainval35k-style train split, val2017 for evaluation).

The paper's start: --config.init_from=<`ssd_jax.convert vgg16` output> --config.init_parts=base
(docs/weights.md).
"""

from configs import default
from ssd_jax.classes import COCO_CLASSES


def get_config():
  config = default.get_config()
  config.input.dataset = 'coco'
  config.input.class_names = COCO_CLASSES
  config.input.max_boxes = 100
  config.input.eval_max_boxes = 100
  # Caffe SSD300 COCO sizes: scales 0.15 .. 0.9 with 0.07 for conv4_3.
  config.anchors.min_sizes = (21, 45, 99, 153, 207, 261)
  config.anchors.max_sizes = (45, 99, 153, 207, 261, 315)
  config.num_train_steps = 400_000
  config.optimizer.boundaries = (280_000, 360_000)
  config.eval.metric = 'coco'
  return config
