"""torchvision's `ssd300_vgg16` (COCO) as an ssd_jax config: what `python -m ssd_jax.convert
torchvision-ssd300` saves with the converted weights.

Reproduces torchvision's pre- and post-processing: RGB 0..255 minus its mean (0.48235, 0.45882,
0.40784) * 255 with std 1 (torchvision: 0..1 input, std 1/255), a bilinear resize to 300x300
without antialiasing (the eval path's tf.image.resize: half-pixel centres, as align_corners
False), default boxes of scales 0.07 .. 1.05 with sizes capped to the image, box coder weights
10, 10, 5, 5 (variances 0.1, 0.1, 0.2, 0.2) with the dw/dh clamp at log(1000 / 16), score
threshold 0.01, top 400 per class, NMS 0.45, 200 detections, boxes clipped to the image, and
its 91-index COCO label space (label = COCO category id, declared by input.category_ids,
so that evaluation on COCO data matches labels by id).
"""

import math

from configs import ssd300_coco
from ssd_jax.classes import TORCHVISION_COCO_CATEGORIES

TORCHVISION_MEAN = (0.48235, 0.45882, 0.40784)  # torchvision's image_mean for ssd300_vgg16.
TORCHVISION_SCALES = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)


def get_config():
  config = ssd300_coco.get_config()
  config.input.class_names = TORCHVISION_COCO_CATEGORIES
  config.input.category_ids = tuple(range(1, len(TORCHVISION_COCO_CATEGORIES) + 1))
  config.input.mean_rgb = tuple(m * 255 for m in TORCHVISION_MEAN)
  config.input.std_rgb = (1.0, 1.0, 1.0)
  config.anchors.min_sizes = tuple(s * 300 for s in TORCHVISION_SCALES[:-1])
  config.anchors.max_sizes = tuple(s * 300 for s in TORCHVISION_SCALES[1:])
  config.anchors.clip_sizes = True
  config.anchors.clip = False
  config.loss.variances = (0.1, 0.1, 0.2, 0.2)  # 1 / torchvision's weights (10, 10, 5, 5).
  config.eval.score_threshold = 0.01
  config.eval.pre_nms_top_k = 400
  config.eval.nms_iou = 0.45
  config.eval.max_detections = 200
  config.eval.clip_boxes = True
  config.eval.max_size_offset = math.log(1000.0 / 16)
  return config
