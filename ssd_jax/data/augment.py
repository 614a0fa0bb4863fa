"""SSD training augmentation as tf.data ops (Liu et al. 2016, Sec. 2.2 and the Caffe code).

Every op is a small function `example -> example` on one (unbatched) example dict:
  image      float32 [H, W, 3], RGB 0..255 (before `normalize`)
  boxes      float32 [N, 4] normalized yxyx
  labels     int32 [N] 1-based; difficult, crowd: bool [N]  (the per-box keys)
  rng        int64 [2] the example's stateless seed
  canvas, canvas_fill   only between a lazy `expand` and `resize`: a virtual image (see
             `materialize_canvas`)
Geometric ops change the image and every per-box key together. Randomness is stateless:
each op derives its own seed from `example['rng']` and a fixed op id, and draws all its
random numbers at once, so an op gives the same result eagerly and inside `tf.data`, and a
pipeline is deterministic given its seeds.
"""

import functools

import tensorflow as tf

try:
  tf.config.set_visible_devices([], 'GPU')  # Keep TensorFlow off the accelerators.
except RuntimeError:  # TensorFlow was initialized before this import; too late to change.
  pass

PER_BOX_KEYS = ('boxes', 'labels', 'difficult', 'crowd')

# Op ids folded into the example seed (fixed: changing them changes every augmentation).
_PHOTOMETRIC, _EXPAND, _CROP, _FLIP = 1, 2, 3, 4

# The SSD batch samplers: minimum IoU with some object; None = any crop (Caffe's sampler
# with max_jaccard_overlap 1.0). The "whole image" option is always available.
CROP_MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9, None)


def _seed(example, op_id):
  return tf.random.experimental.stateless_fold_in(
      tf.cast(example['rng'], tf.int64), op_id)


def _uniform(example, op_id, shape):
  return tf.random.stateless_uniform(shape, _seed(example, op_id), dtype=tf.float32)


def gather_boxes(example, keep):
  """Keeps the boxes where the boolean `keep` [N] is True, in every per-box key."""
  example = dict(example)
  for k in PER_BOX_KEYS:
    if k in example:
      example[k] = tf.boolean_mask(example[k], keep)
  return example


# --- Photometric ---------------------------------------------------------------------------


def photometric_distort(example, *, p=0.5, brightness=32.0, contrast=(0.5, 1.5),
                        saturation=(0.5, 1.5), hue_degrees=18.0):
  """Brightness, then contrast before or after saturation+hue; each applied with prob p.

  As Caffe SSD / ssd.pytorch `PhotometricDistort` (without the channel swap): contrast
  multiplies the image (no mean centring), saturation scales S, hue shifts H in HSV.
  """
  example = materialize_canvas(example)
  u = _uniform(example, _PHOTOMETRIC, [10])
  image = example['image']

  def brightness_op(x):
    delta = (2 * u[1] - 1) * brightness
    return tf.clip_by_value(x + tf.where(u[0] < p, delta, 0.0), 0.0, 255.0)

  def contrast_op(x):
    alpha = contrast[0] + u[3] * (contrast[1] - contrast[0])
    return tf.clip_by_value(x * tf.where(u[2] < p, alpha, 1.0), 0.0, 255.0)

  def saturation_hue_op(x):
    # Fused HSV kernels (scale-free, so they work on 0..255 directly); skipped when neither
    # is drawn, as they are the costliest part of the distortion.
    s_factor = saturation[0] + u[5] * (saturation[1] - saturation[0])
    h_delta = (2 * u[7] - 1) * hue_degrees / 360.0
    x = tf.cond(u[4] < p, lambda: tf.image.adjust_saturation(x, s_factor), lambda: x)
    x = tf.cond(u[6] < p, lambda: tf.image.adjust_hue(x, h_delta), lambda: x)
    return tf.clip_by_value(x, 0.0, 255.0)

  image = brightness_op(image)
  image = tf.cond(u[8] < 0.5,
                  lambda: saturation_hue_op(contrast_op(image)),
                  lambda: contrast_op(saturation_hue_op(image)))
  return {**example, 'image': image}


# --- Geometric -----------------------------------------------------------------------------


def expand(example, *, max_ratio=4.0, mean_rgb=(123.0, 117.0, 104.0), p=0.5, lazy=False):
  """Zoom out: with prob p, places the image on a mean-coloured canvas up to max_ratio x.

  lazy=True only records the canvas (see `materialize_canvas`) and transforms the boxes:
  `crop_to_window` and `random_flip` then work on the virtual canvas and `resize` builds
  the output at the model's size, so the up to 16x larger canvas is never made.
  """
  if max_ratio <= 1:
    return example
  example = materialize_canvas(example)
  u = _uniform(example, _EXPAND, [4])
  image = example['image']
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  ratio = tf.where(u[0] < p, 1.0 + u[1] * (max_ratio - 1.0), 1.0)
  new_h = tf.cast(tf.cast(h, tf.float32) * ratio, tf.int32)
  new_w = tf.cast(tf.cast(w, tf.float32) * ratio, tf.int32)
  top = tf.cast(u[2] * tf.cast(new_h - h, tf.float32), tf.int32)
  left = tf.cast(u[3] * tf.cast(new_w - w, tf.float32), tf.int32)
  scale = tf.cast(tf.stack([h, w, h, w]), tf.float32)
  offset = tf.cast(tf.stack([top, left, top, left]), tf.float32)
  new_size = tf.cast(tf.stack([new_h, new_w, new_h, new_w]), tf.float32)
  boxes = tf.cond(u[0] < p, lambda: (example['boxes'] * scale + offset) / new_size,
                  lambda: example['boxes'])
  example = {**example, 'boxes': boxes,
             'canvas': tf.stack([top, left, new_h, new_w]),
             'canvas_fill': tf.constant(mean_rgb, tf.float32)}
  return example if lazy else materialize_canvas(example)


def _place(src, top, left, height, width, fill):
  """A height x width image of colour `fill` with `src` (which must fit) at (top, left)."""
  h, w = tf.shape(src)[0], tf.shape(src)[1]
  pads = [[top, height - top - h], [left, width - left - w], [0, 0]]
  no_pad = tf.equal(tf.reduce_sum(tf.abs(pads)), 0)
  return tf.cond(no_pad, lambda: src, lambda: tf.pad(src - fill, pads) + fill)


def _without_canvas(example):
  return {k: v for k, v in example.items() if k not in ('canvas', 'canvas_fill')}


def materialize_canvas(example):
  """Builds the virtual image of a lazy `expand` at full size (no-op without one).

  A virtual image is `example['canvas']` = [top, left, height, width] (int32): a
  height x width image of colour `example['canvas_fill']` with `example['image']` (which
  fits inside) at (top, left). Boxes are always relative to the virtual image.
  """
  if 'canvas' not in example:
    return example
  c = example['canvas']
  image = _place(example['image'], c[0], c[1], c[2], c[3], example['canvas_fill'])
  return {**_without_canvas(example), 'image': image}


def _iou(crops, boxes):
  """crops [..., 4], boxes [N, 4] (yxyx) -> IoU [..., N]."""
  c = crops[..., None, :]
  inter_h = tf.maximum(tf.minimum(c[..., 2], boxes[:, 2]) - tf.maximum(c[..., 0], boxes[:, 0]),
                       0.0)
  inter_w = tf.maximum(tf.minimum(c[..., 3], boxes[:, 3]) - tf.maximum(c[..., 1], boxes[:, 1]),
                       0.0)
  inter = inter_h * inter_w
  area_c = (c[..., 2] - c[..., 0]) * (c[..., 3] - c[..., 1])
  area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  return inter / tf.maximum(area_c + area_b - inter, 1e-12)


def _centres_inside(crops, boxes):
  """crops [..., 4], boxes [N, 4] -> bool [..., N]: box centre strictly inside the crop."""
  cy = (boxes[:, 0] + boxes[:, 2]) / 2
  cx = (boxes[:, 1] + boxes[:, 3]) / 2
  c = crops[..., None, :]
  return (cy > c[..., 0]) & (cy < c[..., 2]) & (cx > c[..., 1]) & (cx < c[..., 3])


def _image_size(example):
  """(height, width) int32 of the image, or of the virtual image of a lazy `expand`."""
  size = example['canvas'][2:] if 'canvas' in example else tf.shape(example['image'])[:2]
  return size[0], size[1]


def _snap_to_pixels(windows, height, width):
  """Windows [..., 4] (normalized yxyx) -> (pixel windows [..., 4] int32, the same windows
  normalized): each edge rounded to the nearest pixel, at least one pixel high and wide.
  The pixel window is what `crop_to_window` cuts."""
  h = tf.cast(height, tf.float32)
  w = tf.cast(width, tf.float32)
  y0 = tf.cast(tf.round(windows[..., 0] * h), tf.int32)
  x0 = tf.cast(tf.round(windows[..., 1] * w), tf.int32)
  y1 = tf.maximum(tf.cast(tf.round(windows[..., 2] * h), tf.int32), y0 + 1)
  x1 = tf.maximum(tf.cast(tf.round(windows[..., 3] * w), tf.int32), x0 + 1)
  pixels = tf.stack([y0, x0, y1, x1], axis=-1)
  return pixels, tf.cast(pixels, tf.float32) / tf.stack([h, w, h, w])


def sample_crop_window(example, *, min_ious=CROP_MIN_IOUS, max_trials=50, min_scale=0.3,
                       max_aspect=2.0):
  """The SSD batch sampler; returns a crop window [4] (normalized yxyx, on the pixel grid).

  For each sampler (min IoU in `min_ious`), up to `max_trials` candidates are drawn (scale
  in [min_scale, 1], aspect in [1/max_aspect, max_aspect], as Caffe SSD) and snapped to
  whole pixels (as `crop_to_window` will cut them, so the patch tested is the patch cut);
  a candidate qualifies when its IoU with some target object (not crowd) reaches the
  sampler's minimum and the centre of at least one target lies inside it. The first
  qualifying candidate of each sampler and the whole image are the options; one is drawn
  uniformly. Vectorized: all samplers x trials at once, no loop.
  """
  k, t = len(min_ious), max_trials
  u = _uniform(example, _CROP, [4 * k * t + k + 1])
  u_scale, u_ar, u_y, u_x = [tf.reshape(v, [k, t]) for v in tf.split(u[:4 * k * t], 4)]
  u_pick = u[4 * k * t:]
  scale = min_scale + u_scale * (1.0 - min_scale)
  lo = tf.maximum(1.0 / max_aspect, scale**2)
  hi = tf.minimum(max_aspect, 1.0 / scale**2)
  ar = lo + u_ar * (hi - lo)
  ch = tf.minimum(scale / tf.sqrt(ar), 1.0)
  cw = tf.minimum(scale * tf.sqrt(ar), 1.0)
  y0 = u_y * (1.0 - ch)
  x0 = u_x * (1.0 - cw)
  _, crops = _snap_to_pixels(tf.stack([y0, x0, y0 + ch, x0 + cw], axis=-1),
                             *_image_size(example))  # [K, T, 4]

  boxes = example['boxes']
  target = tf.logical_not(example['crowd']) if 'crowd' in example else tf.ones_like(
      boxes[:, 0], tf.bool)
  iou = tf.where(target, _iou(crops, boxes), -1.0)  # [K, T, N]
  max_iou = tf.reduce_max(tf.concat([iou, -tf.ones([k, t, 1])], axis=-1), axis=-1)
  has_centre = tf.reduce_any(_centres_inside(crops, boxes) & target, axis=-1)
  thresholds = tf.constant([-1.0 if m is None else m for m in min_ious], tf.float32)
  ok = (max_iou >= thresholds[:, None]) & has_centre  # [K, T]
  found = tf.reduce_any(ok, axis=1)  # [K]
  first = tf.argmax(tf.cast(ok, tf.int32), axis=1, output_type=tf.int32)  # [K]
  chosen = tf.gather(crops, first, batch_dims=1)  # [K, 4]
  options = tf.concat([[True], found], axis=0)  # whole image + samplers
  pick = tf.argmax(tf.where(options, u_pick, -1.0), output_type=tf.int32)
  windows = tf.concat([tf.constant([[0.0, 0.0, 1.0, 1.0]]), chosen], axis=0)
  return windows[pick]


def crop_to_window(example, window):
  """Crops image and boxes to a window (normalized yxyx): boxes whose centres fall inside
  are kept and clipped to it; the others are removed (from every per-box key). On a
  virtual image (lazy `expand`) the result stays virtual: no pixel is copied but the
  window's share of the source."""
  pixels, win = _snap_to_pixels(window, *_image_size(example))
  y0, x0, y1, x1 = tf.unstack(pixels)
  if 'canvas' in example:  # Crop the virtual image: slice the source, move the canvas.
    src, c = example['image'], example['canvas']
    src_h, src_w = tf.shape(src)[0], tf.shape(src)[1]
    iy0 = tf.clip_by_value(y0 - c[0], 0, src_h)
    iy1 = tf.maximum(tf.clip_by_value(y1 - c[0], 0, src_h), iy0)
    ix0 = tf.clip_by_value(x0 - c[1], 0, src_w)
    ix1 = tf.maximum(tf.clip_by_value(x1 - c[1], 0, src_w), ix0)
    image = src[iy0:iy1, ix0:ix1]
    canvas = tf.stack([tf.clip_by_value(c[0] + iy0 - y0, 0, y1 - y0),
                       tf.clip_by_value(c[1] + ix0 - x0, 0, x1 - x0), y1 - y0, x1 - x0])
    example = {**example, 'canvas': canvas}
  else:
    image = example['image'][y0:y1, x0:x1]
  keep = _centres_inside(win, example['boxes'])
  example = gather_boxes(example, keep)
  size = tf.stack([win[2] - win[0], win[3] - win[1]] * 2)
  origin = tf.stack([win[0], win[1]] * 2)
  boxes = tf.clip_by_value((example['boxes'] - origin) / size, 0.0, 1.0)
  return {**example, 'image': image, 'boxes': boxes}


def random_crop(example, **sampler_kwargs):
  """The SSD random crop: `sample_crop_window` then `crop_to_window`."""
  window = sample_crop_window(example, **sampler_kwargs)
  return crop_to_window(example, window)


def random_flip(example, *, p=0.5):
  """Horizontal flip with probability p (image and boxes together; a virtual image stays
  virtual: its source is flipped and moved)."""
  u = _uniform(example, _FLIP, [1])[0]
  boxes = example['boxes']
  flipped = tf.stack([boxes[:, 0], 1.0 - boxes[:, 3], boxes[:, 2], 1.0 - boxes[:, 1]], axis=1)
  do = u < p
  out = {**example, 'boxes': tf.where(do, flipped, boxes),
         'image': tf.cond(do, lambda: tf.reverse(example['image'], axis=[1]),
                          lambda: example['image'])}
  if 'canvas' in example:
    c = example['canvas']
    mirrored_left = c[3] - c[1] - tf.shape(example['image'])[1]
    out['canvas'] = tf.stack([c[0], tf.where(do, mirrored_left, c[1]), c[2], c[3]])
  return out


# --- Deterministic ---------------------------------------------------------------------------


def resize(example, *, size):
  """Warps the image to size x size (no aspect preservation, as SSD); boxes unchanged.

  A virtual image is built directly at size x size: the source is resized to its share of
  the output and placed on the fill colour (placement rounded to whole output pixels).
  """
  if 'canvas' in example:
    src, c = example['image'], example['canvas']
    h = tf.cast(tf.shape(src)[0], tf.float32)
    w = tf.cast(tf.shape(src)[1], tf.float32)
    sy = size / tf.cast(c[2], tf.float32)
    sx = size / tf.cast(c[3], tf.float32)
    top, left = tf.cast(c[0], tf.float32) * sy, tf.cast(c[1], tf.float32) * sx
    oy0 = tf.clip_by_value(tf.cast(tf.round(top), tf.int32), 0, size)
    ox0 = tf.clip_by_value(tf.cast(tf.round(left), tf.int32), 0, size)
    oy1 = tf.clip_by_value(tf.cast(tf.round(top + h * sy), tf.int32), oy0, size)
    ox1 = tf.clip_by_value(tf.cast(tf.round(left + w * sx), tf.int32), ox0, size)
    part = tf.cond((oy1 > oy0) & (ox1 > ox0),
                   lambda: tf.image.resize(src, tf.stack([oy1 - oy0, ox1 - ox0])),
                   lambda: tf.zeros([0, 0, 3]))
    image = _place(part, oy0, ox0, size, size, example['canvas_fill'])
    example = _without_canvas(example)
  else:
    image = tf.image.resize(example['image'], [size, size], method='bilinear')
  image = tf.ensure_shape(image, [size, size, 3])
  return {**example, 'image': image}


def normalize(example, *, mean_rgb, std_rgb):
  example = materialize_canvas(example)
  image = (example['image'] - tf.constant(mean_rgb, tf.float32)) / tf.constant(
      std_rgb, tf.float32)
  return {**example, 'image': image}


def train_ops(config):
  """The training augmentation for `config`, as a list of example -> example ops."""
  aug = config.input.augment
  ops = []
  if aug.photometric:
    ops.append(photometric_distort)
  if aug.expand:
    # Lazy: crop and flip work on the virtual canvas, resize builds it at the output size.
    ops.append(functools.partial(expand, max_ratio=aug.max_expand_ratio,
                                 mean_rgb=tuple(config.input.mean_rgb), lazy=True))
  if aug.random_crop:
    ops.append(random_crop)
  if aug.flip:
    ops.append(random_flip)
  ops += eval_ops(config, config.model.input_size)
  return ops


def eval_ops(config, size: int):
  """Resize to size x size + normalize only."""
  return [functools.partial(resize, size=size),
          functools.partial(normalize, mean_rgb=tuple(config.input.mean_rgb),
                            std_rgb=tuple(config.input.std_rgb))]


def apply_ops(ops, example):
  for op in ops:
    example = op(example)
  return example
