"""Decoding + per-class NMS against a brute-force greedy numpy reference."""

from absl.testing import parameterized
import jax
import numpy as np

from ssd_jax import box_ops
from ssd_jax import postprocess
from tests import numpy_reference
from tests.test_matcher import random_priors


class PostprocessTest(parameterized.TestCase):

  def test_greedy_nms_by_hand(self):
    boxes = np.array([[0, 0, 1, 1], [0, 0.05, 1, 1.05], [0, 2, 1, 3], [0, 0.5, 1, 1.5]],
                     np.float32)  # sorted by score already
    keep = postprocess.greedy_nms(boxes, None, np.array([True, True, True, False]), 0.45)
    np.testing.assert_array_equal(keep, [True, False, True, False])

  @parameterized.parameters((400, 0.01), (30, 0.2))
  def test_against_reference(self, top_k, threshold):
    rng = np.random.default_rng(top_k)
    num_priors, num_classes = 200, 4
    priors = random_priors(rng, num_priors)
    priors[:, :2] = rng.uniform(0.3, 0.5, (num_priors, 2))  # crowded: NMS has work to do
    loc = rng.normal(scale=0.5, size=(2, num_priors, 4)).astype(np.float32)
    logits = rng.normal(scale=2.0, size=(2, num_priors, num_classes + 1)).astype(np.float32)
    out = jax.jit(postprocess.detect, static_argnames=(
        'score_threshold', 'pre_nms_top_k', 'nms_iou', 'max_detections'))(
            loc, logits, priors, score_threshold=threshold, pre_nms_top_k=top_k, nms_iou=0.45,
            max_detections=50)
    for b in range(2):
      boxes = np.asarray(box_ops.decode(loc[b], priors), np.float64)
      z = logits[b].astype(np.float64)
      probs = np.exp(z - z.max(1, keepdims=True))
      probs /= probs.sum(1, keepdims=True)
      want = numpy_reference.detect(boxes, probs, threshold, top_k, 0.45, 50)
      n = int(np.sum(out['valid'][b]))
      self.assertEqual(n, len(want))
      self.assertFalse(np.any(out['valid'][b][n:]))
      np.testing.assert_allclose(out['scores'][b][:n], [d[0] for d in want], rtol=1e-5)
      np.testing.assert_array_equal(out['classes'][b][:n], [d[1] for d in want])
      np.testing.assert_allclose(out['boxes'][b][:n], [d[2] for d in want], atol=1e-5)

  def test_nothing_above_threshold_gives_empty_valid_output(self):
    priors = random_priors(np.random.default_rng(0), 20)
    logits = np.zeros((1, 20, 3), np.float32)
    logits[..., 0] = 20.0  # all background
    out = postprocess.detect(np.zeros((1, 20, 4), np.float32), logits, priors,
                             max_detections=10)
    self.assertEqual(out['boxes'].shape, (1, 10, 4))
    self.assertFalse(np.any(out['valid']))
