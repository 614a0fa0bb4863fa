"""Default boxes against the paper's counts and a brute-force loop (ssd.pytorch PriorBox style)."""

import glob
import importlib
import itertools
import math
import os

from absl.testing import parameterized
import numpy as np

from configs import default
from configs import shapes
from configs import smoke
from configs import ssd300_coco
from configs import ssd512_voc
from ssd_jax import anchors
from ssd_jax import errors
from ssd_jax import models

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs', '*.py'))
                 if not p.endswith('__init__.py'))


def from_config(config) -> anchors.DefaultBoxes:
  return anchors.from_config(config, models.map_sizes_at(config.model))


def default_boxes(config, input_size=None):
  """anchors.default_boxes at `input_size` on the model's maps at that size."""
  size = input_size or config.model.input_size
  return anchors.default_boxes(config, models.map_sizes_at(config.model)(size), input_size)


def brute_force_priors(map_sizes, input_size, steps, min_sizes, max_sizes, ratios):
  """One box at a time, written independently of the vectorized code ([cy, cx, h, w])."""
  out = []
  for k, f in enumerate(map_sizes):
    for i, j in itertools.product(range(f), repeat=2):
      cy = (i + 0.5) * steps[k] / input_size
      cx = (j + 0.5) * steps[k] / input_size
      s = min_sizes[k] / input_size
      out.append([cy, cx, s, s])
      s2 = math.sqrt(s * (max_sizes[k] / input_size))
      out.append([cy, cx, s2, s2])
      for r in ratios[k]:
        out.append([cy, cx, s / math.sqrt(r), s * math.sqrt(r)])
        out.append([cy, cx, s * math.sqrt(r), s / math.sqrt(r)])
  return np.asarray(out)


def brute_force_config(config, map_sizes, input_size):
  """Every anchors.* option of `config`, one box at a time ([cy, cx, h, w]), on maps of
  `map_sizes` at `input_size`."""
  a, skip, n = config.anchors, config.model.skip_sources, len(map_sizes)
  if a.min_sizes is None:  # The scale rule (its sizes: test_scale_rule_reproduces_caffe_sizes).
    min_sizes, max_sizes = anchors.scale_sizes(config.model.input_size, n, a.s_min, a.s_max,
                                               a.first_scale)
  else:
    min_sizes, max_sizes = a.min_sizes[skip:skip + n], a.max_sizes[skip:skip + n]
  if a.steps is not None and input_size == config.model.input_size:
    steps = a.steps[skip:skip + n]
  else:
    steps = [input_size / f for f in map_sizes]
  out = []
  for k, f in enumerate(map_sizes):
    for i, j in itertools.product(range(f), repeat=2):
      cy, cx = (i + a.offset) * steps[k] / input_size, (j + a.offset) * steps[k] / input_size
      hws = [(min_sizes[k], min_sizes[k])]
      if a.extra_scale:
        hws.append((math.sqrt(min_sizes[k] * max_sizes[k]),) * 2)
      for r in a.aspect_ratios[skip + k]:
        hws.append((min_sizes[k] / math.sqrt(r), min_sizes[k] * math.sqrt(r)))
        if a.flip:
          hws.append((min_sizes[k] * math.sqrt(r), min_sizes[k] / math.sqrt(r)))
      for h, w in hws:
        h, w = h / input_size, w / input_size
        if a.clip_sizes:
          h, w = min(h, 1.0), min(w, 1.0)
        if a.clip:
          y0, x0 = max(cy - h / 2, 0.0), max(cx - w / 2, 0.0)
          y1, x1 = min(cy + h / 2, 1.0), min(cx + w / 2, 1.0)
          out.append([(y0 + y1) / 2, (x0 + x1) / 2, y1 - y0, x1 - x0])
        else:
          out.append([cy, cx, h, w])
  return np.asarray(out)


class AnchorsTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('ssd300', default.get_config, 8732, [38, 19, 10, 5, 3, 1]),
      ('ssd512', ssd512_voc.get_config, 24564, [64, 32, 16, 8, 4, 2, 1]),
  )
  def test_paper_prior_counts_and_brute_force(self, get_config, count, map_sizes):
    config = get_config()
    priors = default_boxes(config)
    self.assertEqual(priors.shape, (count, 4))
    expected = brute_force_priors(map_sizes, config.model.input_size, config.anchors.steps,
                                  config.anchors.min_sizes, config.anchors.max_sizes,
                                  config.anchors.aspect_ratios)
    np.testing.assert_allclose(priors, expected, atol=1e-6)

  def test_first_cell_by_hand(self):
    priors = default_boxes(default.get_config())
    c = 4 / 300  # centre of cell (0, 0) of conv4_3: 0.5 * step 8 / 300
    r2 = math.sqrt(2)
    np.testing.assert_allclose(priors[:4], [
        [c, c, 0.1, 0.1],
        [c, c, math.sqrt(30 * 60) / 300, math.sqrt(30 * 60) / 300],
        [c, c, 30 / r2 / 300, 30 * r2 / 300],
        [c, c, 30 * r2 / 300, 30 / r2 / 300]], rtol=1e-6)
    # Last prior: the 1x1 map's cell, centred, transposed 2:1 box of side 264.
    np.testing.assert_allclose(priors[-1], [0.5, 0.5, 264 * r2 / 300, 264 / r2 / 300],
                               rtol=1e-6)

  @parameterized.named_parameters(
      ('voc', 0.2, 0.9, 0.1, [30, 60, 111, 162, 213, 264], [60, 111, 162, 213, 264, 315]),
      ('coco', 0.15, 0.9, 0.07, [21, 45, 99, 153, 207, 261], [45, 99, 153, 207, 261, 315]),
  )
  def test_scale_rule_reproduces_caffe_sizes(self, s_min, s_max, first, mins, maxs):
    got_min, got_max = anchors.scale_sizes(300, 6, s_min, s_max, first)
    np.testing.assert_allclose(got_min, mins)
    np.testing.assert_allclose(got_max, maxs)

  def test_scale_rule_config_matches_explicit_sizes(self):
    explicit = ssd300_coco.get_config()
    rule = ssd300_coco.get_config()
    rule.anchors.min_sizes = rule.anchors.max_sizes = None
    rule.anchors.s_min, rule.anchors.first_scale = 0.15, 0.07
    np.testing.assert_allclose(default_boxes(rule), default_boxes(explicit),
                               atol=1e-6)

  def test_clip_keeps_corners_in_image(self):
    config = default.get_config()
    config.anchors.clip = True
    priors = default_boxes(config)
    corners = np.concatenate([priors[:, :2] - priors[:, 2:] / 2,
                              priors[:, :2] + priors[:, 2:] / 2], axis=1)
    self.assertGreaterEqual(corners.min(), -1e-6)
    self.assertLessEqual(corners.max(), 1 + 1e-6)
    unclipped = default_boxes(default.get_config())
    self.assertGreater(np.abs(unclipped - priors).max(), 0.1)  # clipping did something

  def test_boxes_per_cell(self):
    self.assertEqual(from_config(default.get_config()).boxes_per_cell, (4, 6, 6, 6, 4, 4))
    config = default.get_config()
    config.anchors.flip = False
    self.assertEqual(from_config(config).boxes_per_cell, (3, 4, 4, 4, 3, 3))

  def test_too_few_entries_is_a_clear_error(self):
    config = default.get_config()
    config.anchors.steps = (8, 16)
    with self.assertRaisesRegex(ValueError, 'anchors.steps has 2 entries'):
      default_boxes(config)


class EvalScalesTest(parameterized.TestCase):
  """Default boxes at another input size (multi-scale testing) and `eval_scales`."""

  def test_boxes_at_another_size_keep_their_pixel_sizes(self):
    config = shapes.get_config()  # Explicit sizes in pixels; steps = input size / map size.
    maps = [56, 28, 14, 7, 4, 2]  # ssd512 with the conv3 map at 224: 224 / 4, / 8, ...
    expected = brute_force_priors(maps, 224, [224 / f for f in maps], config.anchors.min_sizes,
                                  config.anchors.max_sizes, [(2,)] + [(2, 3)] * 5)
    np.testing.assert_allclose(default_boxes(config, 224), expected, atol=1e-6)
    np.testing.assert_array_equal(default_boxes(config, config.model.input_size),
                                  default_boxes(config))

  def test_scale_rule_sizes_are_those_of_the_model_input_size(self):
    config = smoke.get_config()  # The scale rule at 96 px: sizes are fractions of 96.
    min_sizes, max_sizes = anchors.scale_sizes(96, 4, config.anchors.s_min,
                                               config.anchors.s_max, config.anchors.first_scale)
    maps = [20, 10, 5, 3]  # ssd300 at 160: conv4_3 160 / 8, conv7, then 3x3 stride-2 convs.
    expected = brute_force_priors(maps, 160, [160 / f for f in maps], min_sizes, max_sizes,
                                  config.anchors.aspect_ratios)
    np.testing.assert_allclose(default_boxes(config, 160), expected, atol=1e-6)

  def test_explicit_steps_describe_the_model_input_size_only(self):
    config = default.get_config()  # SSD300: steps 8, 16, 32, 64, 100, 300.
    at_512 = default_boxes(config, 512)
    self.assertAlmostEqual(float(at_512[0, 0]), 0.5 * 512 / 64 / 512)  # map 64: step 8 px
    self.assertAlmostEqual(float(at_512[0, 2]), 30 / 512)  # Caffe's 30 px box, in pixels

  def test_eval_scales_by_hand(self):
    config = shapes.get_config()
    config.eval.scales = ((224, 0, 2), (128, 0, 6), (96, 2, 6))
    got = anchors.eval_scales(config, models.map_sizes_at(config.model))
    # 224: 56^2 * 4 + 28^2 * 6 priors; 128: all 6,142; 96 (maps 24, 12, 6, 3, 2, 1): maps
    # 2 .. 5 start after 24^2 * 4 + 12^2 * 6 = 3,168 and hold 6 * (36 + 9 + 4 + 1) = 300.
    self.assertEqual(got.scales, ((224, 0, 17248), (128, 0, 6142), (96, 3168, 3468)))
    self.assertEqual(got.maps, config.eval.scales)
    np.testing.assert_array_equal(got.boxes, np.concatenate([
        default_boxes(config, 224)[:17248], default_boxes(config),
        default_boxes(config, 96)[3168:]]))
    np.testing.assert_array_equal(from_config(config).eval_scales.boxes, got.boxes)
    self.assertEqual(anchors.eval_input_size(config), 224)
    config.eval.scales = None
    self.assertIsNone(anchors.eval_scales(config, models.map_sizes_at(config.model)))
    self.assertIsNone(from_config(config).eval_scales)
    self.assertIsNone(anchors.eval_scale_maps(config))
    self.assertEqual(anchors.eval_input_size(config), 128)

  @parameterized.parameters(
      (shapes.get_config, ((224, 0),), 'not \\(size, first_map, end_map\\)'),
      (shapes.get_config, ((224, 2, 2),), 'maps 2 .. 1 of'),
      (shapes.get_config, ((224, 0, 7),), 'among the model\'s 6 source maps'),
      (shapes.get_config, ((224.0, 0, 2),), 'in integers'),
      (shapes.get_config, (), 'is empty'),
      (default.get_config, ((96, 0, 6),), '\\(96, 0, 6\\): model.input_size=96 is too small'),
  )
  def test_bad_eval_scales_are_clear_errors(self, get_config, scales, message):
    config = get_config()
    config.eval.scales = scales
    with self.assertRaisesRegex(errors.UserError, message):
      anchors.eval_scales(config, models.map_sizes_at(config.model))
    with self.assertRaisesRegex(errors.UserError, message):
      from_config(config)


@parameterized.named_parameters(*[(name, name) for name in CONFIGS])
class EveryConfigTest(parameterized.TestCase):
  """Each config's default boxes (and those of its eval scales) against the brute-force loop."""

  def test_default_boxes_match_the_brute_force_loop(self, name):
    config = importlib.import_module(f'configs.{name}').get_config()
    priors = from_config(config)
    size = config.model.input_size
    expected = brute_force_config(config, priors.map_sizes, size)
    self.assertEqual(priors.boxes.shape, expected.shape)
    np.testing.assert_allclose(priors.boxes, expected, atol=1e-6)
    self.assertEqual(priors.boxes.shape[0], sum(
        f * f * k for f, k in zip(priors.map_sizes, priors.boxes_per_cell)))
    if priors.eval_scales is None:
      return
    kept = []
    for (size, first, end), (_, start, stop) in zip(priors.eval_scales.maps,
                                                     priors.eval_scales.scales):
      map_sizes = models.map_sizes_at(config.model)(size)
      every = brute_force_config(config, map_sizes, size)
      per_cell = priors.boxes_per_cell
      counts = np.cumsum([0] + [f * f * k for f, k in zip(map_sizes, per_cell)])
      self.assertEqual((start, stop), (counts[first], counts[end]))
      kept.append(every[start:stop])
    np.testing.assert_allclose(priors.eval_scales.boxes, np.concatenate(kept), atol=1e-6)
