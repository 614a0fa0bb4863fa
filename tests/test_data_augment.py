"""Tests for ssd_jax.data.augment: invariants, box/image consistency, eager == tf.data."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from configs import default
from ssd_jax.data import augment

tf.config.set_visible_devices([], 'GPU')

PATCH = (250.0, 10.0, 240.0)  # Magenta: far from the background and the expand mean.


def _example(seed=0, h=90, w=120, patch_yxyx=(20, 30, 50, 90), extra_boxes=()):
  """A grey noisy image with one solid patch whose box is the first box."""
  rng = np.random.default_rng(seed)
  image = rng.uniform(60, 140, (h, w, 3)).astype(np.float32)
  y0, x0, y1, x1 = patch_yxyx
  image[y0:y1, x0:x1] = PATCH
  boxes = [(y0 / h, x0 / w, y1 / h, x1 / w)] + list(extra_boxes)
  n = len(boxes)
  return {
      'image': tf.constant(image),
      'boxes': tf.constant(boxes, tf.float32),
      'labels': tf.range(1, n + 1, dtype=tf.int32),
      'difficult': tf.zeros([n], tf.bool),
      'crowd': tf.zeros([n], tf.bool),
      'rng': tf.constant([seed, 7], tf.int64),
  }


def _patch_extent(image):
  """Tight box (pixel yxyx, exclusive max) of pixels close to the patch colour."""
  close = np.all(np.abs(image - np.asarray(PATCH)) < 40, axis=-1)
  rows, cols = np.flatnonzero(close.any(1)), np.flatnonzero(close.any(0))
  if not len(rows):
    return None
  return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float32)


def _run_in_dataset(fn, example):
  ds = tf.data.Dataset.from_tensors(example).map(fn)
  return next(iter(ds))


OPS = {
    'photometric': augment.photometric_distort,
    'expand': functools.partial(augment.expand, max_ratio=4.0, p=1.0),
    'random_crop': augment.random_crop,
    'flip': functools.partial(augment.random_flip, p=1.0),
    'resize': functools.partial(augment.resize, size=64),
    'normalize': functools.partial(augment.normalize, mean_rgb=(1., 2., 3.),
                                   std_rgb=(2., 2., 2.)),
}


@pytest.mark.parametrize('name', sorted(OPS))
def test_op_same_eagerly_and_in_tf_data(name):
  for seed in range(3):
    ex = _example(seed, extra_boxes=[(0.5, 0.5, 0.9, 0.95)])
    eager = OPS[name](ex)
    graph = _run_in_dataset(OPS[name], ex)
    assert sorted(eager) == sorted(graph)
    for k in eager:
      np.testing.assert_allclose(eager[k].numpy(), graph[k].numpy(), atol=1e-4, err_msg=k)


def test_ops_are_deterministic_given_rng_and_vary_with_it():
  ops = augment.train_ops(default.get_config())
  a = augment.apply_ops(ops, _example(1))
  b = augment.apply_ops(ops, _example(1))
  np.testing.assert_array_equal(a['image'].numpy(), b['image'].numpy())
  outs = {augment.apply_ops(ops, _example(s))['image'].numpy().tobytes() for s in range(4)}
  assert len(outs) == 4


@pytest.mark.parametrize('pipeline', ['expand', 'crop', 'flip', 'expand+crop+flip',
                                      'lazy expand+crop+flip'])
def test_box_still_frames_the_solid_patch(pipeline):
  ops = {
      'expand': [functools.partial(augment.expand, max_ratio=3.0, p=1.0)],
      'crop': [augment.random_crop],
      'flip': [functools.partial(augment.random_flip, p=1.0)],
      'expand+crop+flip': [functools.partial(augment.expand, max_ratio=3.0),
                           augment.random_crop, augment.random_flip],
      'lazy expand+crop+flip': [
          functools.partial(augment.expand, max_ratio=3.0, lazy=True), augment.random_crop,
          augment.random_flip, augment.materialize_canvas],
  }[pipeline]
  checked = 0
  for seed in range(25):
    out = augment.apply_ops(ops, _example(seed, extra_boxes=[(0.6, 0.6, 0.95, 0.9)]))
    image = out['image'].numpy()
    h, w = image.shape[:2]
    labels = out['labels'].numpy()
    extent = _patch_extent(image)
    if 1 not in labels:  # The crop removed the patch's box (its centre fell outside).
      continue
    box = out['boxes'].numpy()[list(labels).index(1)] * np.array([h, w, h, w])
    assert extent is not None
    np.testing.assert_allclose(box, extent, atol=1.01, err_msg=f'seed {seed}')
    checked += 1
  assert checked >= 10


def test_patch_frame_after_resize():
  ex = _example(3)
  out = augment.resize(ex, size=300)
  extent = _patch_extent(out['image'].numpy())
  np.testing.assert_allclose(out['boxes'].numpy()[0] * 300, extent, atol=3.0)


def test_boxes_stay_valid_and_in_unit_square():
  config = default.get_config()
  config.model.input_size = 64
  ops = augment.train_ops(config)
  rng = np.random.default_rng(0)
  for seed in range(30):
    y0, x0 = rng.uniform(0, 0.7, 2)
    extra = [(y0, x0, y0 + rng.uniform(0.01, 0.3), x0 + rng.uniform(0.01, 0.3))
             for _ in range(4)]
    out = augment.apply_ops(ops, _example(seed, extra_boxes=extra))
    b = out['boxes'].numpy()
    assert out['image'].shape == (64, 64, 3)
    assert np.all(np.isfinite(out['image'].numpy()))
    assert np.all((b >= 0) & (b <= 1))
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    for k in augment.PER_BOX_KEYS:
      assert out[k].shape[0] == b.shape[0]


def test_photometric_stays_in_range_and_changes_colours():
  ex = _example(0)
  changed = 0
  for seed in range(8):
    ex['rng'] = tf.constant([seed, 0], tf.int64)
    out = augment.photometric_distort(ex)['image'].numpy()
    assert out.min() >= 0 and out.max() <= 255
    changed += not np.allclose(out, ex['image'].numpy(), atol=1e-3)
  assert changed >= 6


def test_crop_keeps_centres_inside_and_whole_image_without_boxes():
  ex = _example(0)
  for key in augment.PER_BOX_KEYS:
    ex[key] = ex[key][:0]
  for seed in range(5):
    ex['rng'] = tf.constant([seed, 1], tf.int64)
    out = augment.random_crop(ex)
    assert out['image'].shape == ex['image'].shape  # No target: the whole image.
  window = augment.sample_crop_window(_example(2))
  assert 0 <= window[0] < window[2] <= 1 and 0 <= window[1] < window[3] <= 1


def test_crop_cuts_the_tested_patch_and_never_loses_every_box():
  # Small images whose pixels hold their own (y, x), so the cut patch is read off the
  # output; 3,000 draws (before the sampler tested unrounded patches, ~0.2% lost every box).
  rng = np.random.default_rng(0)
  cases = []
  for h, w in ((23, 37), (40, 31), (61, 90)):
    yx = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing='ij'), -1)
    image = np.concatenate([yx, np.zeros((h, w, 1))], -1).astype(np.float32)
    for _ in range(4):
      n = rng.integers(1, 4)
      lo = rng.uniform(0, 0.8, (n, 2))
      hi = np.minimum(lo + rng.uniform(0.05, 0.5, (n, 2)), 1)
      boxes = np.concatenate([lo, hi], 1).astype(np.float32)  # yxyx
      cases.append((image, boxes))
  draws = 250

  def crop(index):
    outs = []
    for k, (image, boxes) in enumerate(cases):  # Static shapes per case.
      n = len(boxes)
      ex = {'image': tf.constant(image), 'boxes': tf.constant(boxes),
            'labels': tf.range(1, n + 1, dtype=tf.int32), 'difficult': tf.zeros([n], tf.bool),
            'crowd': tf.zeros([n], tf.bool), 'rng': tf.stack([tf.constant(k, tf.int64), index])}
      out = augment.random_crop(ex)
      kept = tf.reduce_any(out['labels'][:, None] == ex['labels'][None], axis=0)
      outs.append((out['image'][0, 0, :2], tf.shape(out['image'])[:2], kept))
    return tuple(outs)

  results = list(tf.data.Dataset.range(draws).map(crop).as_numpy_iterator())
  for k, (image, boxes) in enumerate(cases):
    h, w = image.shape[:2]
    cy = (boxes[:, 0] + boxes[:, 2]) / np.float32(2)
    cx = (boxes[:, 1] + boxes[:, 3]) / np.float32(2)
    for draw in results:
      (y0, x0), (ph, pw), kept = draw[k]
      y0, x0 = int(y0), int(x0)
      y1, x1 = y0 + int(ph), x0 + int(pw)
      expected = ((cy > np.float32(y0) / h) & (cy < np.float32(y1) / h) &
                  (cx > np.float32(x0) / w) & (cx < np.float32(x1) / w))
      np.testing.assert_array_equal(kept, expected)
      assert kept.any(), f'case {k}: crop {(y0, x0, y1, x1)} of {(h, w)} kept no box'


def test_crop_window_meets_min_iou():
  # Force a single sampler with min IoU 0.7: the window overlaps the box by >= 0.7.
  ex = _example(4, patch_yxyx=(10, 10, 80, 100))
  for seed in range(10):
    ex['rng'] = tf.constant([seed, 2], tf.int64)
    w = augment.sample_crop_window(ex, min_ious=(0.7,)).numpy()
    if np.allclose(w, [0, 0, 1, 1]):
      continue
    iou = augment._iou(tf.constant(w), ex['boxes']).numpy()[0]
    assert iou >= 0.7 - 1e-6


def test_flip_mirrors_boxes():
  ex = _example(0)
  out = augment.random_flip(ex, p=1.0)
  b = ex['boxes'].numpy()[0]
  np.testing.assert_allclose(out['boxes'].numpy()[0], [b[0], 1 - b[3], b[2], 1 - b[1]])
  np.testing.assert_array_equal(out['image'].numpy(), ex['image'].numpy()[:, ::-1])


def test_lazy_expand_matches_building_the_canvas():
  def lazy_fn(e):
    e = augment.expand(e, max_ratio=4.0, p=1.0, lazy=True)
    return augment.materialize_canvas(augment.random_flip(augment.random_crop(e)))

  def eager_fn(e):
    e = augment.expand(e, max_ratio=4.0, p=1.0)
    return augment.random_flip(augment.random_crop(e))

  examples = [_example(seed, extra_boxes=[(0.6, 0.6, 0.95, 0.9)]) for seed in range(10)]
  stacked = {k: tf.stack([e[k] for e in examples]) for k in examples[0]}
  in_dataset = list(tf.data.Dataset.from_tensor_slices(stacked).map(lazy_fn))
  for ex, lazy_ds in zip(examples, in_dataset):
    eager, lazy = eager_fn(ex), lazy_fn(ex)
    assert sorted(eager) == sorted(lazy)
    for k in eager:  # Crop and flip on the virtual canvas: bit for bit the same.
      np.testing.assert_array_equal(eager[k].numpy(), lazy[k].numpy(), err_msg=k)
      np.testing.assert_array_equal(eager[k].numpy(), lazy_ds[k].numpy(), err_msg=k)
    # Resize builds the virtual image at the output size: equal up to the blending at the
    # image/canvas border and sub-pixel placement (checked on a smooth image).
    yy, xx = np.mgrid[:90, :120]
    smooth = np.stack([yy * 2.0, xx * 2.0, 200 - yy - xx], -1).astype(np.float32)
    ex = {**ex, 'image': tf.constant(smooth)}
    a = augment.resize(eager_fn(ex), size=64)['image'].numpy()
    b = augment.resize(augment.random_flip(augment.random_crop(
        augment.expand(ex, max_ratio=4.0, p=1.0, lazy=True))), size=64)['image'].numpy()
    assert np.mean(np.abs(a - b)) < 2.0
    assert np.mean(np.abs(a - b) > 20) < 0.05


def test_expand_canvas_is_mean_coloured():
  ex = _example(5)
  out = augment.expand(ex, max_ratio=4.0, mean_rgb=(1.0, 2.0, 3.0), p=1.0)
  image = out['image'].numpy()
  assert image.shape[0] > ex['image'].shape[0]
  np.testing.assert_array_equal(image[0, 0], [1, 2, 3])
  np.testing.assert_array_equal(image[-1, -1], [1, 2, 3])


def test_saturation_and_hue_match_colorsys_reference():
  import colorsys  # pylint: disable=g-import-not-at-top
  ex = _example(0, h=6, w=7)
  # Find seeds where (a) only saturation and (b) only hue is applied, contrast/brightness not.
  image = ex['image'].numpy().reshape(-1, 3) / 255
  for seed in range(200):
    ex['rng'] = tf.constant([seed, 3], tf.int64)
    u = augment._uniform(ex, augment._PHOTOMETRIC, [10]).numpy()
    if u[0] < 0.5 or u[2] < 0.5:
      continue
    s = 0.5 + u[5] if u[4] < 0.5 else 1.0
    dh = (2 * u[7] - 1) * 18 / 360 if u[6] < 0.5 else 0.0
    expected = []
    for px in image:
      h, sat, v = colorsys.rgb_to_hsv(*px)
      expected.append(colorsys.hsv_to_rgb((h + dh) % 1, min(sat * s, 1.0), v))
    expected = np.asarray(expected).reshape(6, 7, 3) * 255
    out = augment.photometric_distort(ex)['image'].numpy()
    np.testing.assert_allclose(out, expected, atol=0.05)
