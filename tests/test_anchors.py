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
from experiments import sweeps
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
  """Every anchors.* option of `config` (stacked scales included), one box at a time
  ([cy, cx, h, w], float32), on maps of `map_sizes` at `input_size`.

  Written from the docstring of anchors.py, independently of its vectorized code, with the
  same arithmetic in float64 (centres (i + offset) * step / size; sides in pixels, then / size)
  and clip in float32 like box_ops, so that the result is bit for bit the code's.
  """
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
    # Scales of map k: its own (max size only with extra_scale), then its stacked ones.
    scales = [(min_sizes[k], max_sizes[k] if a.extra_scale else None,
               a.aspect_ratios[skip + k])]
    if a.stacked_scales is not None:
      scales += list(a.stacked_scales[skip + k])
    for i, j in itertools.product(range(f), repeat=2):
      cy, cx = (i + a.offset) * steps[k] / input_size, (j + a.offset) * steps[k] / input_size
      for s_min, s_max, ratios in scales:
        hws = [(s_min, s_min)]
        if s_max is not None:
          hws.append((math.sqrt(s_min * s_max),) * 2)
        for r in ratios:
          hws.append((s_min / math.sqrt(r), s_min * math.sqrt(r)))
          if a.flip:
            hws.append((s_min * math.sqrt(r), s_min / math.sqrt(r)))
        for h, w in hws:
          h, w = h / input_size, w / input_size
          if a.clip_sizes:
            h, w = min(h, 1.0), min(w, 1.0)
          if a.clip:
            c, half = np.float32([cy, cx]), np.float32([h, w]) / np.float32(2)
            low = np.clip(c - half, np.float32(0), np.float32(1))
            high = np.clip(c + half, np.float32(0), np.float32(1))
            out.append(np.concatenate([(low + high) / np.float32(2), high - low]))
          else:
            out.append(np.float32([cy, cx, h, w]))
  return np.asarray(out, np.float32).reshape(-1, 4)


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
  """Each config's default boxes (and those of its eval scales) against the brute-force loop,
  bit for bit: the loop reproduces the code before anchors.stacked_scales existed (checked
  against that code's output once, 2026-12-04), so every existing config keeps its priors."""

  def test_default_boxes_match_the_brute_force_loop(self, name):
    config = importlib.import_module(f'configs.{name}').get_config()
    priors = from_config(config)
    size = config.model.input_size
    expected = brute_force_config(config, priors.map_sizes, size)
    self.assertEqual(priors.boxes.dtype, np.float32)
    np.testing.assert_array_equal(priors.boxes, expected)
    self.assertEqual(priors.boxes.shape[0], sum(
        f * f * k for f, k in zip(priors.map_sizes, priors.boxes_per_cell)))
    if priors.eval_scales is None:
      return
    kept = []
    for (size, first, end), (_, start, stop) in zip(priors.eval_scales.maps,
                                                     priors.eval_scales.scales):
      map_sizes = models.map_sizes_at(config.model)(size)
      every = brute_force_config(config, map_sizes, size)
      skip, per_cell = config.model.skip_sources, priors.boxes_per_cell
      counts = np.cumsum([0] + [f * f * k for f, k in zip(map_sizes, per_cell)])
      self.assertEqual((start, stop), (counts[first - skip], counts[end - skip]))
      kept.append(every[start:stop])
    np.testing.assert_array_equal(priors.eval_scales.boxes, np.concatenate(kept))


def _stacked_smoke(**anchor_keys):
  """smoke (maps 12, 6, 3, 2 at 96 px, the scale rule) with two scales stacked on map 1: one
  with its sqrt(min * max) square and ratio 2, one square alone; `anchor_keys` on top."""
  config = smoke.get_config()
  config.anchors.stacked_scales = ((), ((10, 14, (2,)), (7.5, None, ())), (), ())
  for key, value in anchor_keys.items():
    config.anchors[key] = value
  return config


def _source_layers_variant(name):
  config = shapes.get_config()
  for key, value in dict(sweeps.SOURCE_LAYERS)[name].items():
    group, key = key.split('.')
    config[group][key] = value
  return config


class StackedScalesTest(parameterized.TestCase):
  """anchors.stacked_scales: several scales on one map (the paper's Table 3)."""

  @parameterized.named_parameters(
      ('smoke', _stacked_smoke, {}),
      ('no_flip', _stacked_smoke, {'flip': False}),
      ('no_extra_scale', _stacked_smoke, {'extra_scale': False}),
      ('clip', _stacked_smoke, {'clip': True, 'clip_sizes': True}),
      ('explicit_steps', _stacked_smoke, {'min_sizes': (10, 20, 40, 70),
                                          'max_sizes': (20, 40, 70, 96),
                                          'steps': (8, 16, 32, 48)}),
      ('no_finest', lambda: _source_layers_variant('no_finest'), {}),
      ('no_two_finest', lambda: _source_layers_variant('no_two_finest'), {}),
  )
  def test_priors_equal_the_brute_force_loop(self, get_config, anchor_keys):
    config = get_config()
    for key, value in anchor_keys.items():
      config.anchors[key] = value
    priors = from_config(config)
    np.testing.assert_array_equal(
        priors.boxes, brute_force_config(config, priors.map_sizes, config.model.input_size))
    self.assertEqual(priors.boxes.shape[0], sum(
        f * f * k for f, k in zip(priors.map_sizes, priors.boxes_per_cell)))
    size = 2 * config.model.input_size  # At another size too (multi-scale testing).
    maps = models.map_sizes_at(config.model)(size)
    np.testing.assert_array_equal(default_boxes(config, size),
                                  brute_force_config(config, maps, size))

  def test_boxes_per_cell_by_hand(self):
    # Map 1: its own 1 + 1 + 2 * 2 = 6, then (10, 14, (2,)): 1 + 1 + 2, then (7.5, None): 1.
    self.assertEqual(from_config(_stacked_smoke()).boxes_per_cell, (4, 11, 6, 4))
    # No flip: own 1 + 1 + 2, stacked 1 + 1 + 1 and 1.
    self.assertEqual(from_config(_stacked_smoke(flip=False)).boxes_per_cell, (3, 8, 4, 3))
    # extra_scale is the own scale's only: own 1 + 4, stacked 4 and 1.
    self.assertEqual(from_config(_stacked_smoke(extra_scale=False)).boxes_per_cell,
                     (3, 10, 5, 3))

  def test_first_cell_of_the_stacked_map_by_hand(self):
    config = _stacked_smoke()
    priors = from_config(config)
    first = 12 * 12 * 4  # Map 1 (6 x 6, step 16 px) starts after map 0's priors.
    c, r2 = 8 / 96, math.sqrt(2)
    stacked = [[c, c, 10 / 96, 10 / 96], [c, c, math.sqrt(140) / 96, math.sqrt(140) / 96],
               [c, c, 10 / r2 / 96, 10 * r2 / 96], [c, c, 10 * r2 / 96, 10 / r2 / 96],
               [c, c, 7.5 / 96, 7.5 / 96]]
    np.testing.assert_allclose(priors.boxes[first + 6:first + 11], stacked, rtol=1e-6)
    # The map's own boxes come first and are those of the config without stacked scales.
    config.anchors.stacked_scales = None
    own = from_config(config).boxes[first:first + 6]
    np.testing.assert_array_equal(priors.boxes[first:first + 6], own)
    self.assertEqual(priors.stacked_scales, ((), ((10, 14, (2,)), (7.5, None, ())), (), ()))

  @parameterized.parameters(
      (((), ((10, 14),), (), ()), r'map 1: \(10, 14\) is not \(min_size, max_size or None'),
      (((), ((10, 14, 2),), (), ()), r'map 1: \(10, 14, 2\) is not'),
      (((), ((-10, 14, ()),), (), ()), r'map 1: \(-10, 14, \(\)\) is not'),
      (((), ((10, 14, (0,)),), (), ()), 'positive ratios'),
      (((), (10, 14, (2,)), (), ()), r'map 1: \(10, 14, \(2,\)\) is not a tuple of \(min_size, '
                                     r'max_size or None, aspect_ratios\) scales \(one scale is '
                                     r'written \(\(min_size'),
      (((), ()), 'anchors.stacked_scales has 2 entries but the model has 4 source maps'),
  )
  def test_malformed_stacked_scales_are_one_line(self, value, message):
    config = smoke.get_config()
    config.anchors.stacked_scales = value
    with self.assertRaisesRegex(errors.UserError, message):
      from_config(config)

  def test_min_sizes_without_max_sizes_is_one_line(self):
    config = smoke.get_config()  # The scale rule: min_sizes and max_sizes None.
    config.anchors.min_sizes = (10, 20, 40, 70)
    with self.assertRaisesRegex(errors.UserError, 'anchors.min_sizes is set but '
                                'anchors.max_sizes is None: give both'):
      from_config(config)

  def test_eval_scales_count_the_skipped_maps(self):
    """eval.scales indexes all source maps; a skipped map stands for the finest predicting."""
    config = _source_layers_variant('no_two_finest')  # shapes: ((224, 0, 2), (128, 0, 6), ...
    got = from_config(config).eval_scales
    self.assertEqual(config.eval.scales, ((224, 0, 2), (128, 0, 6), (96, 2, 6)))
    self.assertEqual(got.maps, ((224, 2, 3), (128, 2, 6), (96, 2, 6)))
    # 224 px: maps 14, 7, 4, 2 (after the two skipped); map 2 alone, 94 per cell. 96 px:
    # maps 6, 3, 2, 1, all of them.
    self.assertEqual(got.scales, ((224, 0, 14 * 14 * 94), (128, 0, 6142),
                                  (96, 0, 6 * 6 * 94 + (9 + 4 + 1) * 6)))
    np.testing.assert_array_equal(got.boxes, np.concatenate([
        default_boxes(config, 224)[:14 * 14 * 94], default_boxes(config),
        default_boxes(config, 96)]))
    config.eval.scales = ((224, 0, 7),)
    with self.assertRaisesRegex(errors.UserError, 'among the model\'s 6 source maps'):
      from_config(config)
