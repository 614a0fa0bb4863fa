"""Default boxes against the paper's counts and a brute-force loop (ssd.pytorch PriorBox style)."""

import itertools
import math

from absl.testing import parameterized
import numpy as np

from configs import default
from configs import shapes
from configs import smoke
from configs import ssd300_coco
from configs import ssd512_voc
from ssd_jax import anchors
from ssd_jax import errors


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


class AnchorsTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('ssd300', default.get_config, 8732, [38, 19, 10, 5, 3, 1]),
      ('ssd512', ssd512_voc.get_config, 24564, [64, 32, 16, 8, 4, 2, 1]),
  )
  def test_paper_prior_counts_and_brute_force(self, get_config, count, map_sizes):
    config = get_config()
    priors = anchors.default_boxes(config)
    self.assertEqual(priors.shape, (count, 4))
    expected = brute_force_priors(map_sizes, config.model.input_size, config.anchors.steps,
                                  config.anchors.min_sizes, config.anchors.max_sizes,
                                  config.anchors.aspect_ratios)
    np.testing.assert_allclose(priors, expected, atol=1e-6)

  def test_first_cell_by_hand(self):
    priors = anchors.default_boxes(default.get_config())
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
    np.testing.assert_allclose(anchors.default_boxes(rule), anchors.default_boxes(explicit),
                               atol=1e-6)

  def test_clip_keeps_corners_in_image(self):
    config = default.get_config()
    config.anchors.clip = True
    priors = anchors.default_boxes(config)
    corners = np.concatenate([priors[:, :2] - priors[:, 2:] / 2,
                              priors[:, :2] + priors[:, 2:] / 2], axis=1)
    self.assertGreaterEqual(corners.min(), -1e-6)
    self.assertLessEqual(corners.max(), 1 + 1e-6)
    unclipped = anchors.default_boxes(default.get_config())
    self.assertGreater(np.abs(unclipped - priors).max(), 0.1)  # clipping did something

  def test_boxes_per_cell(self):
    self.assertEqual(anchors.boxes_per_cell(default.get_config()), [4, 6, 6, 6, 4, 4])
    config = default.get_config()
    config.anchors.flip = False
    self.assertEqual(anchors.boxes_per_cell(config), [3, 4, 4, 4, 3, 3])

  def test_too_few_entries_is_a_clear_error(self):
    config = default.get_config()
    config.anchors.steps = (8, 16)
    with self.assertRaisesRegex(ValueError, 'anchors.steps has 2 entries'):
      anchors.default_boxes(config)


class CoverageTest(parameterized.TestCase):
  """anchors.coverage_by_size against hand-computed overlaps."""

  def test_counts_priors_per_object_by_size(self):
    # A 0.3 x 0.3 object; prior A is the object itself (IoU 1), prior B is the same square
    # shifted by half its side (IoU 0.15 * 0.3 / (2 * 0.09 - 0.045) = 1/3).
    # A 0.05 x 0.05 object that no prior overlaps.
    gt = np.array([[0.1, 0.1, 0.4, 0.4], [0.8, 0.8, 0.85, 0.85]])
    priors = np.array([[0.25, 0.25, 0.3, 0.3], [0.25, 0.4, 0.3, 0.3]])  # cy, cx, h, w
    at_half = {r['size']: r for r in anchors.coverage_by_size(gt, priors, 0.5)}
    self.assertEqual(at_half['all']['objects'], 2)
    self.assertAlmostEqual(at_half['all']['priors_per_object'], 0.5)
    self.assertAlmostEqual(at_half['all']['covered'], 0.5)
    self.assertEqual(at_half['0.2-0.4']['priors_per_object'], 1)
    self.assertEqual(at_half['0.0-0.1']['covered'], 0)
    self.assertTrue(np.isnan(at_half['0.4-1.0']['covered']))  # no object that large
    at_third = {r['size']: r for r in anchors.coverage_by_size(gt, priors, 0.33)}
    self.assertEqual(at_third['0.2-0.4']['priors_per_object'], 2)
    self.assertEqual(at_third['0.0-0.1']['priors_per_object'], 0)


class EvalScalesTest(parameterized.TestCase):
  """Default boxes at another input size (multi-scale testing) and `eval_scales`."""

  def test_boxes_at_another_size_keep_their_pixel_sizes(self):
    config = shapes.get_config()  # Explicit sizes in pixels; steps = input size / map size.
    maps = [56, 28, 14, 7, 4, 2]  # ssd512 with the conv3 map at 224: 224 / 4, / 8, ...
    expected = brute_force_priors(maps, 224, [224 / f for f in maps], config.anchors.min_sizes,
                                  config.anchors.max_sizes, [(2,)] + [(2, 3)] * 5)
    np.testing.assert_allclose(anchors.default_boxes(config, 224), expected, atol=1e-6)
    np.testing.assert_array_equal(anchors.default_boxes(config, config.model.input_size),
                                  anchors.default_boxes(config))

  def test_scale_rule_sizes_are_those_of_the_model_input_size(self):
    config = smoke.get_config()  # The scale rule at 96 px: sizes are fractions of 96.
    min_sizes, max_sizes = anchors.scale_sizes(96, 4, config.anchors.s_min,
                                               config.anchors.s_max, config.anchors.first_scale)
    maps = [20, 10, 5, 3]  # ssd300 at 160: conv4_3 160 / 8, conv7, then 3x3 stride-2 convs.
    expected = brute_force_priors(maps, 160, [160 / f for f in maps], min_sizes, max_sizes,
                                  config.anchors.aspect_ratios)
    np.testing.assert_allclose(anchors.default_boxes(config, 160), expected, atol=1e-6)

  def test_explicit_steps_describe_the_model_input_size_only(self):
    config = default.get_config()  # SSD300: steps 8, 16, 32, 64, 100, 300.
    at_512 = anchors.default_boxes(config, 512)
    self.assertAlmostEqual(float(at_512[0, 0]), 0.5 * 512 / 64 / 512)  # map 64: step 8 px
    self.assertAlmostEqual(float(at_512[0, 2]), 30 / 512)  # Caffe's 30 px box, in pixels

  def test_eval_scales_by_hand(self):
    config = shapes.get_config()
    config.eval.scales = ((224, 0, 2), (128, 0, 6), (96, 2, 6))
    got = anchors.eval_scales(config)
    # 224: 56^2 * 4 + 28^2 * 6 priors; 128: all 6,142; 96 (maps 24, 12, 6, 3, 2, 1): maps
    # 2 .. 5 start after 24^2 * 4 + 12^2 * 6 = 3,168 and hold 6 * (36 + 9 + 4 + 1) = 300.
    self.assertEqual(got.scales, ((224, 0, 17248), (128, 0, 6142), (96, 3168, 3468)))
    np.testing.assert_array_equal(got.boxes, np.concatenate([
        anchors.default_boxes(config, 224)[:17248], anchors.default_boxes(config),
        anchors.default_boxes(config, 96)[3168:]]))
    self.assertEqual(anchors.eval_input_size(config), 224)
    for off in (None, (None,)):  # (None,): in the config.json of older workdirs.
      config.eval.scales = off
      single = anchors.eval_scales(config)
      self.assertEqual(single.scales, ((128, 0, 6142),))
      np.testing.assert_array_equal(single.boxes, anchors.default_boxes(config))
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
      anchors.eval_scales(config)
