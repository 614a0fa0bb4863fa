"""Drawing boxes on images (TensorBoard previews, the detect command)."""

from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

GT_COLOUR = (0, 220, 0)
DET_COLOUR = (255, 40, 40)


def denormalize(image: np.ndarray, mean_rgb, std_rgb) -> np.ndarray:
  """Undoes the input normalization: float [H, W, 3] -> uint8."""
  pixels = image * np.asarray(std_rgb, np.float32) + np.asarray(mean_rgb, np.float32)
  return np.clip(pixels, 0, 255).astype(np.uint8)


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: Sequence[str],
               colour=DET_COLOUR) -> np.ndarray:
  """Draws normalized yxyx boxes with text labels on a uint8 [H, W, 3] image (a copy)."""
  canvas = Image.fromarray(image)
  draw = ImageDraw.Draw(canvas)
  h, w = image.shape[:2]
  for (y0, x0, y1, x1), label in zip(np.asarray(boxes), labels):
    xy = [x0 * w, y0 * h, x1 * w, y1 * h]
    draw.rectangle(xy, outline=colour, width=2)
    if label:
      draw.text((xy[0] + 2, xy[1] + 1), label, fill=colour)
  return np.asarray(canvas)


def draw_example(image, gt_boxes, gt_mask, detections, index, class_names,
                 score_threshold=0.3):
  """Ground truth (green) and detections above `score_threshold` (red) of one batch entry."""
  keep_gt = np.asarray(gt_mask[index], bool)
  image = draw_boxes(image, gt_boxes[index][keep_gt],
                     [''] * int(keep_gt.sum()), GT_COLOUR)
  keep = np.asarray(detections['valid'][index]) & (
      np.asarray(detections['scores'][index]) >= score_threshold)
  names = [f'{class_names[c - 1]} {s:.2f}' for c, s in
           zip(detections['classes'][index][keep], detections['scores'][index][keep])]
  return draw_boxes(image, detections['boxes'][index][keep], names, DET_COLOUR)
