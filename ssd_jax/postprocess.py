"""Detection output: decode, per-class threshold, top-k, greedy NMS, keep the best per image.

Follows Caffe SSD's DetectionOutput: a candidate of class c needs score > score_threshold; the
top `pre_nms_top_k` candidates of each class go through greedy NMS, where a box is suppressed
by a kept higher-scoring box of the same class with IoU > nms_iou; of all kept boxes the
`max_detections` best per image are returned. All shapes are static, so this jit-compiles and
runs on the accelerator right after the model.
"""

import functools

import jax
import jax.numpy as jnp

from ssd_jax import box_ops


def greedy_nms(boxes, scores, valid, iou_threshold):
  """Greedy NMS over candidates already sorted by descending score.

  Args:
    boxes: [K, 4] yxyx. scores: [K] (unused beyond the order). valid: [K] bool.
    iou_threshold: suppress when IoU with a kept box is > this.

  Returns:
    keep: [K] bool.
  """
  del scores
  boxes, valid = jnp.asarray(boxes), jnp.asarray(valid)
  num = boxes.shape[0]
  index = jnp.arange(num)

  def body(i, keep):
    iou = box_ops.pairwise_iou(boxes[i][None], boxes)[0]  # [K]
    suppressed = jnp.any(keep & (iou > iou_threshold) & (index < i))
    return keep.at[i].set(valid[i] & ~suppressed)

  return jax.lax.fori_loop(0, num, body, jnp.zeros((num,), bool))


def _detect_one(loc, conf_logits, priors, variances, score_threshold, pre_nms_top_k, nms_iou,
                max_detections, clip_boxes, max_size_offset):
  """One image: loc [P, 4], logits [P, C + 1] -> fixed-size detections."""
  boxes = box_ops.decode(loc, priors, variances, max_size_offset)  # [P, 4]
  if clip_boxes:  # Before NMS, as torchvision does.
    boxes = jnp.clip(boxes, 0.0, 1.0)
  scores = jax.nn.softmax(conf_logits.astype(jnp.float32), axis=-1)[:, 1:].T  # [C, P]
  k = min(pre_nms_top_k, scores.shape[1])
  top_scores, top_idx = jax.lax.top_k(scores, k)  # [C, k], descending
  top_valid = top_scores > score_threshold
  top_boxes = boxes[top_idx]  # [C, k, 4]
  keep = jax.vmap(greedy_nms, in_axes=(0, 0, 0, None))(top_boxes, top_scores, top_valid,
                                                         nms_iou)
  num_classes = scores.shape[0]
  flat_scores = jnp.where(keep, top_scores, -jnp.inf).reshape(-1)
  flat_classes = jnp.broadcast_to(jnp.arange(1, num_classes + 1)[:, None], keep.shape)
  n = min(max_detections, flat_scores.shape[0])
  best_scores, best = jax.lax.top_k(flat_scores, n)
  valid = jnp.isfinite(best_scores)
  return {
      'boxes': jnp.where(valid[:, None], top_boxes.reshape(-1, 4)[best], 0.0),
      'scores': jnp.where(valid, best_scores, 0.0),
      'classes': jnp.where(valid, flat_classes.reshape(-1)[best], 0).astype(jnp.int32),
      'valid': valid,
  }


def detect(loc, conf_logits, priors_cyxhw, *, variances=box_ops.VARIANCES, score_threshold=0.01,
           pre_nms_top_k=400, nms_iou=0.45, max_detections=200, clip_boxes=False,
           max_size_offset=None):
  """Batched detections from the heads' outputs.

  Args:
    loc: [B, P, 4] predicted offsets; conf_logits: [B, P, C + 1]; priors_cyxhw: [P, 4].
    clip_boxes: clip decoded boxes to the image before NMS (torchvision).
    max_size_offset: bound on the decoded log-size offsets (see `box_ops.decode`).

  Returns:
    dict of boxes [B, K, 4] (normalized yxyx), scores [B, K], classes [B, K] (1-based),
    valid [B, K], sorted by descending score, K = max_detections.
  """
  fn = functools.partial(_detect_one, priors=priors_cyxhw, variances=tuple(variances),
                         score_threshold=score_threshold, pre_nms_top_k=pre_nms_top_k,
                         nms_iou=nms_iou, max_detections=max_detections,
                         clip_boxes=clip_boxes, max_size_offset=max_size_offset)
  return jax.vmap(fn)(loc, conf_logits)


def detect_from_config(loc, conf_logits, priors_cyxhw, config):
  """`detect` with the thresholds of `config.eval` and the variances of `config.loss`."""
  return detect(loc, conf_logits, priors_cyxhw, variances=tuple(config.loss.variances),
                score_threshold=config.eval.score_threshold,
                pre_nms_top_k=config.eval.pre_nms_top_k, nms_iou=config.eval.nms_iou,
                max_detections=config.eval.max_detections, clip_boxes=config.eval.clip_boxes,
                max_size_offset=config.eval.max_size_offset)
