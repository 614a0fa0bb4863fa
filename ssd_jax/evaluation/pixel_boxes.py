"""Pixel boxes at the evaluation edge, to and from the project's normalized yxyx.

Inside the library boxes are normalized `[ymin, xmin, ymax, xmax]` (docs/CONVENTIONS.md).
Evaluation works in the pixel coordinates of the reference tools:

- PASCAL VOC devkit: 1-based pixel corners `[xmin, ymin, xmax, ymax]` with the devkit's +1
  rule (a box covers `xmax - xmin + 1` pixels). Normalized `x_norm = (x - 1) / width`, as tfds
  `voc` stores it, so back to devkit pixels is `x = x_norm * width + 1`.
- COCO: 0-based continuous pixel `[x, y, width, height]`, `x = x_norm * image_width`.

All functions are numpy, float64, and broadcast boxes `[..., K, 4]` against image sizes
`[..., 2]` given as `(height, width)` in pixels (the batches' `orig_size`).
"""

import numpy as np


def _split_size(orig_size):
  """[..., 2] (height, width) -> height, width, each [..., 1] for broadcasting over boxes."""
  size = np.asarray(orig_size, np.float64)
  return size[..., 0:1], size[..., 1:2]


def yxyx_to_devkit_xyxy(boxes_yxyx, orig_size):
  """Normalized yxyx [..., K, 4] -> VOC devkit pixel xyxy [..., K, 4] (x_norm * width + 1)."""
  boxes = np.asarray(boxes_yxyx, np.float64)
  height, width = _split_size(orig_size)
  ymin, xmin, ymax, xmax = np.moveaxis(boxes, -1, 0)
  return np.stack([xmin * width + 1, ymin * height + 1, xmax * width + 1, ymax * height + 1],
                  axis=-1)


def devkit_xyxy_to_yxyx(boxes_xyxy, orig_size):
  """VOC devkit pixel xyxy [..., K, 4] -> normalized yxyx [..., K, 4] ((x - 1) / width)."""
  boxes = np.asarray(boxes_xyxy, np.float64)
  height, width = _split_size(orig_size)
  xmin, ymin, xmax, ymax = np.moveaxis(boxes, -1, 0)
  return np.stack([(ymin - 1) / height, (xmin - 1) / width, (ymax - 1) / height,
                   (xmax - 1) / width], axis=-1)


def yxyx_to_coco_xywh(boxes_yxyx, orig_size):
  """Normalized yxyx [..., K, 4] -> COCO pixel xywh [..., K, 4] (x = x_norm * width)."""
  boxes = np.asarray(boxes_yxyx, np.float64)
  height, width = _split_size(orig_size)
  ymin, xmin, ymax, xmax = np.moveaxis(boxes, -1, 0)
  x0, y0 = xmin * width, ymin * height
  return np.stack([x0, y0, xmax * width - x0, ymax * height - y0], axis=-1)
