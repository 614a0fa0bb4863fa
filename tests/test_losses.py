"""MultiBox loss against a numpy loop with an explicit sort for hard negative mining."""

import functools

from absl.testing import absltest
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssd_jax import losses
from ssd_jax import matcher
from tests import numpy_reference
from tests.test_matcher import random_gt
from tests.test_matcher import random_priors

LOSS_CONFIG = ml_collections.ConfigDict({
    'iou_threshold': 0.5, 'neg_pos_ratio': 3, 'variances': (0.1, 0.1, 0.2, 0.2),
    'loc_weight': 1.0})


def random_batch(rng, num_valid_per_image, max_boxes=6):
  parts = [random_gt(rng, max_boxes, n) for n in num_valid_per_image]
  return {k: np.stack([p[i] for p in parts]) for i, k in enumerate(['boxes', 'labels', 'mask'])}


class LossTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.priors = random_priors(self.rng, 120)

  def _outputs(self, batch_size):
    loc = self.rng.normal(size=(batch_size, 120, 4)).astype(np.float32)
    logits = self.rng.normal(size=(batch_size, 120, 6)).astype(np.float32)
    return loc, logits

  def test_against_reference(self):
    batch = random_batch(self.rng, [3, 0, 6, 1])
    loc, logits = self._outputs(4)
    loss, aux = jax.jit(functools.partial(losses.ssd_loss, loss_config=LOSS_CONFIG))(
        loc, logits, batch, self.priors)
    labels, targets = matcher.match_and_encode(batch['boxes'], batch['labels'], batch['mask'],
                                               self.priors)
    want, want_loc, want_conf = numpy_reference.multibox_loss(
        loc.astype(np.float64), logits.astype(np.float64), np.asarray(labels),
        np.asarray(targets, np.float64), 3)
    self.assertGreater(int(aux['num_pos']), 0)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(aux['loc_loss'], want_loc, rtol=1e-5)
    np.testing.assert_allclose(aux['conf_loss'], want_conf, rtol=1e-5)

  def test_image_without_objects_contributes_nothing(self):
    batch = random_batch(self.rng, [4, 0, 2])
    loc, logits = self._outputs(3)
    full, _ = losses.ssd_loss(loc, logits, batch, self.priors, LOSS_CONFIG)
    keep = np.array([0, 2])
    without, _ = losses.ssd_loss(loc[keep], logits[keep], {k: v[keep] for k, v in batch.items()},
                                 self.priors, LOSS_CONFIG)
    np.testing.assert_allclose(full, without, rtol=1e-6)

  def test_batch_without_positives_is_zero_with_finite_gradient(self):
    batch = random_batch(self.rng, [0, 0])
    loc, logits = self._outputs(2)
    grad_fn = jax.jit(jax.value_and_grad(
        lambda l, c: losses.ssd_loss(l, c, batch, self.priors, LOSS_CONFIG)[0], argnums=(0, 1)))
    loss, grads = grad_fn(loc, logits)
    self.assertEqual(float(loss), 0.0)
    for g in grads:
      self.assertTrue(np.all(np.isfinite(g)))

  def test_hard_negatives_by_hand(self):
    background_loss = jnp.array([[0.1, 0.9, 0.5, 0.7, 0.3, 0.9]])
    positive = jnp.array([[False, True, False, False, False, False]])
    got = losses.hard_negative_mask(background_loss, positive, 3)
    # One positive -> the 3 largest-loss negatives: 0.9 (index 5), 0.7 (3), 0.5 (2).
    np.testing.assert_array_equal(got, [[False, False, True, True, False, True]])

  def test_hard_negatives_match_stable_argsort_ranks(self):
    """The threshold formulation picks what ranks from a stable argsort pick."""
    for ties in (False, True):
      loss = self.rng.uniform(size=(6, 300)).astype(np.float32)
      if ties:  # few distinct values: many ties at the threshold
        loss = np.round(loss * 4) / 4
      positive = self.rng.uniform(size=(6, 300)) < np.array([0, .01, .05, .2, .3, .9])[:, None]
      for ratio in (1, 3):
        got = jax.jit(losses.hard_negative_mask, static_argnums=2)(loss, positive, ratio)
        np.testing.assert_array_equal(got, _hard_negatives_by_argsort(loss, positive, ratio))


  def test_kth_largest_equals_sorting(self):
    """The radix select gives np.sort's k-th largest, over signs, zeros, infinities, ties."""
    x = (self.rng.normal(size=(5, 257)) * 10.0 ** self.rng.integers(-30, 30, size=(5, 257))
         ).astype(np.float32)
    x[1, :100] = -np.inf
    x[2, ::3] = 0.0
    x[2, 1::3] = -0.0
    x[3] = np.round(x[3])  # ties
    x[4, :5] = [np.inf, -np.inf, np.finfo(np.float32).max, -np.finfo(np.float32).tiny, 1e-45]
    k = self.rng.integers(1, 258, size=(5, 1))
    k[1] = 257  # the smallest: -inf
    got = jax.jit(losses.kth_largest)(x, k)
    want = np.take_along_axis(-np.sort(-x, axis=-1), k - 1, axis=-1)
    np.testing.assert_array_equal(got, want)


def _hard_negatives_by_argsort(background_loss, positive, neg_pos_ratio):
  """The straightforward version: rank every prior with two stable argsorts."""
  neg_loss = jnp.where(positive, -jnp.inf, background_loss)
  order = jnp.argsort(-neg_loss, axis=-1, stable=True)
  rank = jnp.argsort(order, axis=-1, stable=True)
  num_pos = jnp.sum(positive, axis=-1, keepdims=True)
  num_neg = jnp.minimum(neg_pos_ratio * num_pos, positive.shape[-1] - num_pos)
  return (rank < num_neg) & ~positive


if __name__ == '__main__':
  absltest.main()
