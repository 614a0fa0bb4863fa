"""Tests for the synthetic shapes data set (generator and tfds builder)."""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ssd_jax.data import shapes
from ssd_jax.data import shapes_draw

tf.config.set_visible_devices([], 'GPU')

SIZE = shapes_draw.IMAGE_SIZE


def _draw_many(seed, n):
  return [shapes_draw.draw_example(seed, i) for i in range(n)]


def test_draw_is_deterministic_per_seed_and_index():
  a_img, a_obj = shapes_draw.draw_example(3, 5)
  b_img, b_obj = shapes_draw.draw_example(3, 5)
  np.testing.assert_array_equal(a_img, b_img)
  for k in a_obj:
    np.testing.assert_array_equal(a_obj[k], b_obj[k])
  assert not np.array_equal(a_img, shapes_draw.draw_example(4, 5)[0])
  assert not np.array_equal(a_img, shapes_draw.draw_example(3, 6)[0])


def test_statistics_within_stated_ranges():
  examples = _draw_many(0, 80)
  labels = np.concatenate([o['label'] for _, o in examples])
  boxes = np.concatenate([o['bbox'] for _, o in examples]) * SIZE
  visible = np.concatenate([o['visible_fraction'] for _, o in examples])
  difficult = np.concatenate([o['is_difficult'] for _, o in examples])
  counts = [len(o['label']) for _, o in examples]
  for image, _ in examples:
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
  assert len(shapes_draw.CLASS_NAMES) >= 6
  assert set(labels) == set(range(len(shapes_draw.CLASS_NAMES)))  # Every class appears.
  assert min(counts) >= 1 and max(counts) <= 12 and len(set(counts)) >= 6
  h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
  assert np.all(h > 0) and np.all(w > 0)
  assert np.all(boxes >= 0) and np.all(boxes <= SIZE)
  # Fully visible objects: size and aspect as drawn (+-1 px rasterization).
  full = visible >= 0.999
  long_side = np.maximum(h, w)[full]
  assert long_side.min() >= 0.05 * SIZE - 1 and long_side.max() <= 0.9 * SIZE + 1
  assert np.all(w[full] <= 3 * h[full] + 2) and np.all(h[full] <= 3 * w[full] + 2)
  # The sizes span the SSD feature maps; elongated objects both ways exist.
  side = np.maximum(h, w) / SIZE
  assert (side < 0.1).mean() > 0.05 and (side > 0.5).mean() > 0.05
  assert (w / h > 2).any() and (h / w > 2).any()
  # Occlusion happens; difficult objects exist but are a minority.
  assert (visible < 0.9).mean() > 0.05
  assert 0.02 < difficult.mean() < 0.5
  np.testing.assert_array_equal(difficult, (visible < shapes_draw.DIFFICULT_FRACTION) | (
      np.maximum(h, w) < shapes_draw.DIFFICULT_SIZE))


def test_box_is_tight_around_an_isolated_object():
  # On a flat background with one object, the annotated box is the object's pixel extent.
  rng = np.random.default_rng(0)
  for name in shapes_draw.CLASS_NAMES:
    mask = shapes_draw._shape_mask(name, 40, 25, rng)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (0, 24, 0, 39), name


def test_colour_does_not_give_the_class_away():
  # Object colours are drawn independently of the class: mean colour per class is similar.
  rng_means = []
  for image, objects in _draw_many(1, 40):
    for box, label, v in zip(objects['bbox'], objects['label'], objects['visible_fraction']):
      if v < 0.999:
        continue
      y0, x0, y1, x1 = (box * SIZE).astype(int)
      cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
      rng_means.append((label, image[cy, cx].astype(float)))
  per_class = {}
  for label, colour in rng_means:
    per_class.setdefault(label, []).append(colour)
  means = np.array([np.mean(v, 0) for v in per_class.values() if len(v) >= 5])
  assert len(means) >= 4
  assert np.abs(means - means.mean(0)).max() < 90


def test_builder_is_deterministic_and_splits_differ(tmp_path):
  config = shapes.make_config(num_train=6, num_validation=3, seed=7, num_workers=1)
  datasets = []
  for d in ('a', 'b'):
    b = shapes.SsdShapes(config=config, data_dir=str(tmp_path / d))
    b.download_and_prepare()
    assert b.info.splits['train'].num_examples == 6
    assert b.info.splits['validation'].num_examples == 3
    assert b.info.features['objects']['label'].names == list(shapes.CLASS_NAMES)
    datasets.append({s: sorted(tfds.as_numpy(b.as_dataset(s)),
                               key=lambda e: e['image/filename'])
                     for s in ('train', 'validation')})
  for s in ('train', 'validation'):
    for x, y in zip(datasets[0][s], datasets[1][s]):
      np.testing.assert_array_equal(x['image'], y['image'])
      np.testing.assert_array_equal(x['objects']['bbox'], y['objects']['bbox'])
  train, val = datasets[0]['train'], datasets[0]['validation']
  assert val[0]['image/filename'] == b'val_000000.jpg'
  assert not np.array_equal(train[0]['image'], val[0]['image'])
  # Stored JPEG round trip keeps the data set's content.
  img, _ = shapes_draw.draw_example(config.train_seed, 0)
  assert np.abs(train[0]['image'].astype(float) - img).mean() < 6


def test_default_config_is_the_full_data_set(tmp_path):
  (c,) = shapes.SsdShapes.BUILDER_CONFIGS
  assert (c.name, c.num_train, c.num_validation) == ('default', 5000, 500)
  assert c.train_seed != c.validation_seed
  assert shapes.make_builder(data_dir=str(tmp_path)).builder_config is c
  assert shapes.make_builder(10, 2, 0, str(tmp_path)).builder_config.name == 'n10_2_s0'
