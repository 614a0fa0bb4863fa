"""The matcher against the ssd.pytorch-style numpy loop, including padding, ties, bad boxes."""

from absl.testing import parameterized
import jax
import numpy as np

from ssd_jax import box_ops
from ssd_jax import matcher
from tests import numpy_reference


def random_priors(rng, n):
  centre = rng.uniform(0.05, 0.95, (n, 2))
  return np.concatenate([centre, rng.uniform(0.05, 0.6, (n, 2))], axis=1).astype(np.float32)


def random_gt(rng, max_boxes, num_valid):
  low = rng.uniform(0, 0.7, (max_boxes, 2))
  boxes = np.concatenate([low, low + rng.uniform(0.02, 0.5, (max_boxes, 2))], axis=1)
  labels = rng.integers(1, 6, max_boxes)
  mask = np.arange(max_boxes) < num_valid
  labels[~mask] = 0
  boxes[~mask] = 0.0
  return boxes.astype(np.float32), labels.astype(np.int32), mask


class MatcherTest(parameterized.TestCase):

  @parameterized.parameters(0, 1, 3, 8)
  def test_against_reference(self, num_valid):
    rng = np.random.default_rng(num_valid)
    priors = random_priors(rng, 150)
    match = jax.jit(matcher.match)
    for _ in range(3):
      boxes, labels, mask = random_gt(rng, 8, num_valid)
      got_labels, got_boxes = match(boxes, labels, mask, priors, 0.5)
      want_labels, want_boxes = numpy_reference.match(boxes, labels, mask, priors, 0.5)
      np.testing.assert_array_equal(got_labels, want_labels)
      np.testing.assert_allclose(got_boxes, want_boxes, atol=1e-6)

  def test_batch_matches_each_image_alone(self):
    """The batched scan equals the reference image by image, whatever each image's box count."""
    rng = np.random.default_rng(11)
    priors = random_priors(rng, 200)
    batch = [random_gt(rng, 7, n) for n in (0, 1, 4, 7)]
    boxes, labels, mask = (np.stack(x) for x in zip(*batch))
    got_labels, got_loc = jax.jit(matcher.match_and_encode)(boxes, labels, mask, priors, 0.5)
    for i, (b, l, m) in enumerate(batch):
      want_labels, want_boxes = numpy_reference.match(b, l, m, priors, 0.5)
      np.testing.assert_array_equal(got_labels[i], want_labels)
      np.testing.assert_allclose(got_loc[i], box_ops.encode(want_boxes, priors), atol=1e-5)

  def test_masks_with_holes_and_long_padding(self):
    """Invalid boxes before valid ones, and many padding slots after the batch's last real box
    (the loop stops there), give the reference's matches; an all-padding batch matches
    nothing."""
    rng = np.random.default_rng(12)
    priors = random_priors(rng, 200)
    match = jax.jit(matcher.match_and_encode)
    boxes, labels, _ = (np.stack(x) for x in zip(*[random_gt(rng, 40, 40) for _ in range(3)]))
    mask = np.zeros((3, 40), bool)
    mask[0, [1, 3]] = True  # holes before real boxes; the batch's last real box is slot 9
    mask[1, [0, 9]] = True
    got_labels, got_loc = match(boxes, labels, mask, priors, 0.5)
    for i in range(3):
      want_labels, want_boxes = numpy_reference.match(boxes[i], labels[i], mask[i], priors, 0.5)
      np.testing.assert_array_equal(got_labels[i], want_labels)
      np.testing.assert_allclose(got_loc[i], box_ops.encode(want_boxes, priors), atol=1e-5)
    self.assertEqual(int(np.sum(got_labels[2])), 0)  # image 2 has no real box
    got_labels, got_loc = match(boxes, labels, np.zeros_like(mask), priors, 0.5)
    np.testing.assert_array_equal(got_labels, 0)
    np.testing.assert_allclose(got_loc, 0.0, atol=1e-5)  # negatives encode their own prior

  def test_ties_are_deterministic_and_follow_reference(self):
    rng = np.random.default_rng(5)
    priors = random_priors(rng, 60)
    priors[10] = priors[20]  # two identical priors: equal IoU with everything
    boxes, labels, mask = random_gt(rng, 6, 5)
    boxes[1] = boxes[0]  # identical ground truth with different labels
    labels[0], labels[1] = 1, 2
    boxes[2] = np.asarray(box_ops.cyxhw_to_yxyx(priors[20]))  # best prior is a tied pair
    got = jax.jit(matcher.match)(boxes, labels, mask, priors, 0.5)
    want = numpy_reference.match(boxes, labels, mask, priors, 0.5)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)
    self.assertEqual(int(got[0][10]), labels[2])  # lowest-index prior wins the forced match

  def test_every_valid_ground_truth_gets_a_prior(self):
    rng = np.random.default_rng(7)
    priors = random_priors(rng, 40)
    boxes, labels, mask = random_gt(rng, 5, 5)
    boxes[3] = [0.0, 0.0, 0.01, 0.01]  # tiny: IoU < 0.5 with every prior
    labels[:] = [1, 2, 3, 4, 5]
    got_labels, _ = matcher.match(boxes, labels, mask, priors, 0.5)
    self.assertIn(4, np.asarray(got_labels))

  def test_bad_boxes_are_masked_and_never_nan(self):
    rng = np.random.default_rng(8)
    priors = random_priors(rng, 50)
    boxes = np.array([[0.5, 0.6, 0.5, 0.9],  # zero height
                      [0.2, 0.8, 0.6, 0.3],  # xmin > xmax
                      [1.2, 1.3, 1.5, 1.6],  # outside the image
                      [np.nan, 0.1, 0.2, 0.3],  # NaN coordinate
                      [0.0, 0.0, 0.0, 0.0]], np.float32)  # padding-like
    labels = np.array([1, 2, 3, 4, 5], np.int32)
    mask = np.ones(5, bool)
    got_labels, got_loc = matcher.match_and_encode(boxes[None], labels[None], mask[None],
                                                   priors)
    np.testing.assert_array_equal(got_labels, 0)
    self.assertTrue(np.all(np.isfinite(got_loc)))

  def test_boxes_partly_outside_are_clipped(self):
    priors = np.array([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]], np.float32)
    boxes = np.array([[-0.5, -0.5, 0.5, 0.5]], np.float32)  # clips to the first prior exactly
    got_labels, got_boxes = matcher.match(boxes, np.array([3]), np.array([True]), priors)
    np.testing.assert_array_equal(got_labels, [3, 0])
    np.testing.assert_allclose(got_boxes[0], [0.0, 0.0, 0.5, 0.5])
