"""SSD512 on COCO 2017 (Caffe SSD512 COCO sizes: scales 0.1 .. 0.9 with 0.04 for conv4_3).

The paper's start: --config.init_from=<`ssd_jax.convert vgg16` output> --config.init_parts=base
(docs/weights.md).
"""

from configs import ssd300_coco
from configs import ssd512_voc


def get_config():
  config = ssd300_coco.get_config()
  config.model = ssd512_voc.get_config().model
  config.anchors = ssd512_voc.get_config().anchors
  config.anchors.min_sizes = (20.48, 51.2, 133.12, 215.04, 296.96, 378.88, 460.8)
  config.anchors.max_sizes = (51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72)
  return config
