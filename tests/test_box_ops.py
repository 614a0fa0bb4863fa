"""Box formats, IoU and the box coder."""

from absl.testing import absltest
import jax
import numpy as np

from ssd_jax import box_ops
from tests import numpy_reference


def random_boxes(rng, n):
  low = rng.uniform(0, 0.8, (n, 2))
  return np.concatenate([low, low + rng.uniform(0.01, 0.5, (n, 2))], axis=1).astype(np.float32)


class BoxOpsTest(absltest.TestCase):

  def test_pairwise_iou_matches_brute_force(self):
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 17), random_boxes(rng, 23)
    b[0] = [0.5, 0.5, 0.5, 0.9]  # zero area
    expected = [[numpy_reference.iou_one(x, y) for y in b] for x in a]
    np.testing.assert_allclose(jax.jit(box_ops.pairwise_iou)(a, b), expected, atol=1e-6)

  def test_iou_by_hand(self):
    a = np.array([[0.0, 0.0, 0.5, 0.5]], np.float32)
    b = np.array([[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]],
                 np.float32)
    np.testing.assert_allclose(box_ops.pairwise_iou(a, b), [[1 / 7, 1.0, 0.0]], atol=1e-6)

  def test_encode_decode_round_trip_and_reference(self):
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 50)
    priors = np.asarray(box_ops.yxyx_to_cyxhw(random_boxes(rng, 50)))
    variances = (0.1, 0.1, 0.2, 0.2)
    enc = jax.jit(box_ops.encode)(boxes, priors)
    expected = [numpy_reference.encode(b, p, variances) for b, p in zip(boxes, priors)]
    np.testing.assert_allclose(enc, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.jit(box_ops.decode)(enc, priors), boxes, atol=1e-5)

  def test_formats_round_trip(self):
    boxes = random_boxes(np.random.default_rng(2), 10)
    np.testing.assert_allclose(box_ops.cyxhw_to_yxyx(box_ops.yxyx_to_cyxhw(boxes)), boxes,
                               atol=1e-6)


if __name__ == '__main__':
  absltest.main()
