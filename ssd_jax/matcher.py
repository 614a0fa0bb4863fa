"""The SSD matching strategy (Liu et al. 2016, Sec. 2.2), batched.

Ground truth comes padded to a static `max_boxes` with a validity mask, so the matcher has
static shapes (a loop over the padded boxes up to the batch's last real one, no Python loop):
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
  """Clips [..., 4] boxes to the image; returns (clipped boxes, mask & positive area)."""
  clipped = jnp.clip(boxes_yxyx, 0.0, 1.0)
  return clipped, mask & (box_ops.area(clipped) > 0)


def _best_matches(gt_boxes, gt_mask, priors_yxyx):
  """IoU argmaxes of a batch, one ground truth at a time.

  Args:
    gt_boxes: [B, M, 4] clipped yxyx ground truth; gt_mask: [B, M] valid boxes.
    priors_yxyx: [P, 4].

  Returns:
    best_gt_iou [B, P] (-1 where no box is valid), best_gt [B, P] (lowest index among
    equals) and best_prior [B, M] (lowest index among equals; 0 for invalid boxes).

  A loop over the M boxes, each step on [B, P] slabs, instead of an [B, M, P] IoU tensor
  and reductions over it: on CPU ~4x faster, as the slabs stay in cache. It stops after the
  last valid box of the batch: padding is most of M (VOC: 64 slots, 1-7 boxes per image
  in the benchmark), and padded boxes change nothing (docs/results/performance.md).
  """
  num_priors = priors_yxyx.shape[0]
  prior_ids = jnp.arange(num_priors, dtype=jnp.int32)
  batch, num_gt = gt_mask.shape
  gt_ids = jnp.arange(num_gt, dtype=jnp.int32)

  def step(index, carry):
    best_gt_iou, best_gt, best_prior = carry
    box = jax.lax.dynamic_index_in_dim(gt_boxes, index, axis=1, keepdims=False)  # [B, 4]
    valid = jax.lax.dynamic_index_in_dim(gt_mask, index, axis=1, keepdims=False)  # [B]
    iou = box_ops.pairwise_iou(box, priors_yxyx)  # [B, P]: image b's box `index`.
    iou = jnp.where(valid[:, None], iou, -1.0)
    best_iou = jnp.max(iou, axis=1, keepdims=True)
    prior = jnp.min(jnp.where(iou == best_iou, prior_ids, num_priors), axis=1)  # [B]
    better = iou > best_gt_iou  # Strict: the lowest index keeps ties; -1 never wins.
    best_prior = jax.lax.dynamic_update_index_in_dim(best_prior, prior, index, axis=1)
    return (jnp.where(better, iou, best_gt_iou), jnp.where(better, index, best_gt),
            best_prior)

  num_used = jnp.max(jnp.where(gt_mask, gt_ids + 1, 0))  # Boxes after it are all padding.
  init = (jnp.full((batch, num_priors), -1.0, gt_boxes.dtype),
          jnp.zeros((batch, num_priors), jnp.int32), jnp.zeros((batch, num_gt), jnp.int32))
  return jax.lax.fori_loop(0, num_used, step, init)


def match_batch(gt_boxes, gt_labels, gt_mask, priors_cyxhw, iou_threshold=0.5):
  """Assigns ground truth to priors for a batch of images.

  Args:
    gt_boxes: [B, M, 4] normalized yxyx ground truth, padded.
    gt_labels: [B, M] int 1-based labels.
    gt_mask: [B, M] bool, True for real ground truth.
    priors_cyxhw: [P, 4] default boxes in centre form.
    iou_threshold: IoU from which a prior is positive.

  Returns:
    labels: [B, P] int32 target class, 0 (background) for negatives.
    boxes: [B, P, 4] yxyx box of the matched ground truth; the prior itself for negatives, so
      that the encoded target is always finite.
  """
  gt_boxes, gt_mask = valid_boxes(gt_boxes, gt_mask)
  priors_yxyx = box_ops.cyxhw_to_yxyx(priors_cyxhw)
  best_gt_iou, best_gt, best_prior = _best_matches(gt_boxes, gt_mask, priors_yxyx)

  def assign(gt_boxes, gt_labels, gt_mask, best_gt_iou, best_gt, best_prior):
    gt_ids = jnp.arange(gt_mask.shape[0], dtype=jnp.int32)
    # Step 1: each valid ground truth forces its best prior; the highest index wins a prior
    # that several share.
    forced_gt = jnp.full(best_gt.shape, -1, jnp.int32).at[best_prior].max(
        jnp.where(gt_mask, gt_ids, -1))
    is_forced = forced_gt >= 0
    matched_gt = jnp.where(is_forced, forced_gt, best_gt)
    positive = is_forced | (best_gt_iou >= iou_threshold)
    labels = jnp.where(positive, gt_labels[matched_gt], 0).astype(jnp.int32)
    boxes = jnp.where(positive[:, None], gt_boxes[matched_gt], priors_yxyx)
    return labels, boxes

  labels, boxes = jax.vmap(assign)(gt_boxes, gt_labels, gt_mask, best_gt_iou, best_gt,
                                   best_prior)
  return jax.lax.stop_gradient(labels), jax.lax.stop_gradient(boxes)


def match(gt_boxes, gt_labels, gt_mask, priors_cyxhw, iou_threshold=0.5):
  """`match_batch` for one image: [M, ...] ground truth -> (labels [P], boxes [P, 4])."""
  labels, boxes = match_batch(gt_boxes[None], gt_labels[None], gt_mask[None], priors_cyxhw,
                              iou_threshold)
  return labels[0], boxes[0]


def match_and_encode(gt_boxes, gt_labels, gt_mask, priors_cyxhw, iou_threshold=0.5,
                     variances=box_ops.VARIANCES):
  """Batched matching: [B, M, ...] ground truth -> (labels [B, P], loc targets [B, P, 4])."""
  labels, boxes = match_batch(gt_boxes, gt_labels, gt_mask, priors_cyxhw, iou_threshold)
  return labels, box_ops.encode(boxes, priors_cyxhw, variances)
