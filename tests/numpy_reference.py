"""Plain numpy reference implementations, written one box at a time, for the tests.

They follow the reference ssd.pytorch / Caffe SSD code paths literally (loops, explicit sorts)
and share no code with the library.
"""

import numpy as np


def iou_one(a, b):
  """IoU of two yxyx boxes."""
  ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = ih * iw
  area = lambda x: max(0.0, x[2] - x[0]) * max(0.0, x[3] - x[1])
  union = area(a) + area(b) - inter
  return inter / union if union > 0 else 0.0


def priors_to_corners(priors):
  return np.concatenate([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2],
                        axis=1)


def match(gt_boxes, gt_labels, gt_mask, priors, threshold):
  """ssd.pytorch `match` (per image), after dropping padding and empty boxes."""
  corners = priors_to_corners(priors)
  num_priors = len(priors)
  gts = []
  for box, label, valid in zip(gt_boxes, gt_labels, gt_mask):
    box = np.clip(box, 0.0, 1.0)
    if valid and (box[2] - box[0]) * (box[3] - box[1]) > 0:
      gts.append((box, label))
  labels = np.zeros(num_priors, np.int64)
  boxes = corners.copy()
  if not gts:
    return labels, boxes
  overlaps = np.array([[iou_one(g, p) for p in corners] for g, _ in gts])  # [G, P]
  best_prior = [int(np.argmax(row)) for row in overlaps]
  best_truth = np.argmax(overlaps, axis=0)
  best_truth_overlap = overlaps.max(axis=0)
  for j in range(len(gts)):
    best_truth_overlap[best_prior[j]] = 2.0
  for j in range(len(gts)):
    best_truth[best_prior[j]] = j
  for p in range(num_priors):
    if best_truth_overlap[p] >= threshold:
      labels[p] = gts[best_truth[p]][1]
      boxes[p] = gts[best_truth[p]][0]
  return labels, boxes


def encode(box, prior, variances):
  cy, cx = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
  h, w = box[2] - box[0], box[3] - box[1]
  return np.array([(cy - prior[0]) / (variances[0] * prior[2]),
                   (cx - prior[1]) / (variances[1] * prior[3]),
                   np.log(h / prior[2]) / variances[2], np.log(w / prior[3]) / variances[3]])


def multibox_loss(loc, logits, target_labels, target_loc, neg_pos_ratio):
  """Loss of a batch from matched targets, mining negatives by an explicit sort per image."""
  total_loc, total_conf, num_pos_total = 0.0, 0.0, 0
  for b in range(loc.shape[0]):
    lse = np.log(np.sum(np.exp(logits[b] - logits[b].max(1, keepdims=True)), axis=1)) + \
        logits[b].max(1)
    ce = lse - logits[b][np.arange(len(lse)), target_labels[b]]
    pos = np.where(target_labels[b] > 0)[0]
    num_pos_total += len(pos)
    for p in pos:
      d = np.abs(loc[b, p] - target_loc[b, p])
      total_loc += np.sum(np.where(d < 1, 0.5 * d * d, d - 0.5))
      total_conf += ce[p]
    background = lse - logits[b][:, 0]
    negs = [p for p in sorted(range(len(lse)), key=lambda p: (-background[p], p))
            if target_labels[b, p] == 0]
    for p in negs[:neg_pos_ratio * len(pos)]:
      total_conf += ce[p]
  n = max(num_pos_total, 1)
  return total_conf / n + total_loc / n, total_loc / n, total_conf / n


def greedy_nms(boxes, scores, threshold):
  """Caffe ApplyNMSFast: walk in descending score, keep if IoU <= threshold with all kept."""
  order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
  kept = []
  for i in order:
    if all(iou_one(boxes[i], boxes[j]) <= threshold for j in kept):
      kept.append(i)
  return kept


def detect(boxes, probs, score_threshold, top_k, nms_iou, max_detections):
  """Detections for one image: boxes [P, 4] decoded, probs [P, C + 1] softmax."""
  dets = []
  for c in range(1, probs.shape[1]):
    cand = [i for i in np.argsort(-probs[:, c], kind='stable')[:top_k]
            if probs[i, c] > score_threshold]
    kept = greedy_nms(boxes[cand], probs[cand, c], nms_iou)
    dets += [(probs[cand[k], c], c, boxes[cand[k]]) for k in kept]
  dets.sort(key=lambda d: -d[0])
  return dets[:max_detections]
