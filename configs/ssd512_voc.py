"""SSD512 on PASCAL VOC 07+12 (Caffe SSD512 sizes: 7 source maps 64 .. 1).

The paper's start: --config.init_from=<`ssd_jax.convert vgg16` output> --config.init_parts=base
(docs/weights.md).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.arch = 'ssd512'
  config.model.input_size = 512
  config.anchors.min_sizes = (35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8)
  config.anchors.max_sizes = (76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6)
  config.anchors.steps = (8, 16, 32, 64, 128, 256, 512)
  config.anchors.aspect_ratios = ((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,))
  config.input.batch_size = 32
  return config
