"""Box formats, IoU and the SSD box coder. Works on numpy and JAX arrays alike.

Formats (see docs/CONVENTIONS.md): `yxyx` = [ymin, xmin, ymax, xmax] corners, `cyxhw` =
[cy, cx, h, w] centre form, both normalized to the image.
"""

import jax.numpy as jnp

VARIANCES = (0.1, 0.1, 0.2, 0.2)  # SSD's box coding variances (centre y/x, size h/w).


def cyxhw_to_yxyx(boxes):
  """[..., 4] centre form -> corners."""
  centre, size = boxes[..., :2], boxes[..., 2:]
  return jnp.concatenate([centre - size / 2, centre + size / 2], axis=-1)


def yxyx_to_cyxhw(boxes):
  """[..., 4] corners -> centre form."""
  low, high = boxes[..., :2], boxes[..., 2:]
  return jnp.concatenate([(low + high) / 2, high - low], axis=-1)


def area(boxes):
  """Area of yxyx boxes [..., 4] -> [...]; 0 for degenerate boxes."""
  size = jnp.maximum(boxes[..., 2:] - boxes[..., :2], 0.0)
  return size[..., 0] * size[..., 1]


def pairwise_iou(boxes_a, boxes_b):
  """IoU of yxyx boxes [N, 4] x [M, 4] -> [N, M]; 0 where the union is empty."""
  low = jnp.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
  high = jnp.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
  inter = jnp.prod(jnp.maximum(high - low, 0.0), axis=-1)
  union = area(boxes_a)[:, None] + area(boxes_b)[None, :] - inter
  return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def encode(boxes_yxyx, priors_cyxhw, variances=VARIANCES):
  """Encodes matched boxes [P, 4] against their priors [P, 4] into SSD regression targets.

  t_c = (c - c_prior) / (var_c * size_prior),  t_s = log(size / size_prior) / var_s.
  Boxes must have positive size (callers substitute the prior for unmatched priors).
  """
  boxes = yxyx_to_cyxhw(boxes_yxyx)
  var = jnp.asarray(variances, dtype=boxes.dtype)
  centre = (boxes[..., :2] - priors_cyxhw[..., :2]) / (var[:2] * priors_cyxhw[..., 2:])
  size = jnp.log(boxes[..., 2:] / priors_cyxhw[..., 2:]) / var[2:]
  return jnp.concatenate([centre, size], axis=-1)


def decode(offsets, priors_cyxhw, variances=VARIANCES, max_size_offset=None):
  """Inverse of `encode`: offsets [..., P, 4] -> yxyx boxes [..., P, 4].

  `max_size_offset` (None = no bound) caps the log-size offsets `offset * variance` before
  the exp, as torchvision's box coder does with log(1000 / 16).
  """
  var = jnp.asarray(variances, dtype=offsets.dtype)
  centre = priors_cyxhw[..., :2] + offsets[..., :2] * var[:2] * priors_cyxhw[..., 2:]
  log_size = offsets[..., 2:] * var[2:]
  if max_size_offset is not None:
    log_size = jnp.minimum(log_size, max_size_offset)
  size = priors_cyxhw[..., 2:] * jnp.exp(log_size)
  return cyxhw_to_yxyx(jnp.concatenate([centre, size], axis=-1))
