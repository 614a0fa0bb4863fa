"""The SSD matching strategy (Liu et al. 2016, Sec. 2.2), for one image; vmap over a batch.

Ground truth comes padded to a static `max_boxes` with a validity mask, so the matcher has
static shapes and no Python loop over boxes:
  1. (bipartite step) each valid ground truth takes its best-overlap prior;
  2. every other prior takes its best-overlap ground truth if that IoU >= threshold.
Ties: in step 2 the lowest-index ground truth wins; if several ground truths share the same best
prior in step 1, the highest index wins (the order of the reference ssd.pytorch loop); the best
prior of a ground truth is the lowest-index prior among equals.

Bad ground truth: boxes are clipped to the image first; padding, and boxes whose clipped area
is zero (xmin >= xmax, ymin >= ymax, or entirely outside the image) are masked out: they match
no prior and so contribute nothing to the loss, and produce no NaN.
"""

import jax
import jax.numpy as jnp

from ssd_jax import box_ops


def valid_boxes(boxes_yxyx, mask):
  """Clips [M, 4] boxes to the image; returns (clipped boxes, mask & positive area)."""
  clipped = jnp.clip(boxes_yxyx, 0.0, 1.0)
  return clipped, mask & (box_ops.area(clipped) > 0)


def match(gt_boxes, gt_labels, gt_mask, priors_cyxhw, iou_threshold=0.5):
  """Assigns ground truth to priors for one image.

  Args:
    gt_boxes: [M, 4] normalized yxyx ground truth, padded.
    gt_labels: [M] int 1-based labels.
    gt_mask: [M] bool, True for real ground truth.
    priors_cyxhw: [P, 4] default boxes in centre form.
    iou_threshold: IoU from which a prior is positive.

  Returns:
    labels: [P] int32 target class, 0 (background) for negatives.
    boxes: [P, 4] yxyx box of the matched ground truth; the prior itself for negatives, so
      that the encoded target is always finite.
  """
  gt_boxes, gt_mask = valid_boxes(gt_boxes, gt_mask)
  priors_yxyx = box_ops.cyxhw_to_yxyx(priors_cyxhw)
  iou = box_ops.pairwise_iou(gt_boxes, priors_yxyx)  # [M, P]
  iou = jnp.where(gt_mask[:, None], iou, -1.0)

  best_gt = jnp.argmax(iou, axis=0)  # [P]
  best_gt_iou = jnp.max(iou, axis=0)  # [P]
  best_prior = jnp.argmax(iou, axis=1)  # [M]

  num_gt, num_priors = iou.shape
  forced = gt_mask[:, None] & (best_prior[:, None] == jnp.arange(num_priors)[None, :])  # [M, P]
  forced_gt = jnp.max(jnp.where(forced, jnp.arange(num_gt)[:, None], -1), axis=0)  # [P]
  is_forced = forced_gt >= 0
  matched_gt = jnp.where(is_forced, forced_gt, best_gt)
  positive = is_forced | (best_gt_iou >= iou_threshold)

  labels = jnp.where(positive, gt_labels[matched_gt], 0).astype(jnp.int32)
  boxes = jnp.where(positive[:, None], gt_boxes[matched_gt], priors_yxyx)
  return jax.lax.stop_gradient(labels), jax.lax.stop_gradient(boxes)


def match_and_encode(gt_boxes, gt_labels, gt_mask, priors_cyxhw, iou_threshold=0.5,
                     variances=box_ops.VARIANCES):
  """Batched matching: [B, M, ...] ground truth -> (labels [B, P], loc targets [B, P, 4])."""
  def one(boxes, labels, mask):
    target_labels, target_boxes = match(boxes, labels, mask, priors_cyxhw, iou_threshold)
    return target_labels, box_ops.encode(target_boxes, priors_cyxhw, variances)
  return jax.vmap(one)(gt_boxes, gt_labels, gt_mask)
