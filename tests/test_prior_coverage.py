"""experiments/prior_coverage.py's coverage_by_size against hand-computed overlaps."""

import numpy as np

from experiments import prior_coverage


def test_counts_priors_per_object_by_size():
  # A 0.3 x 0.3 object; prior A is the object itself (IoU 1), prior B is the same square
  # shifted by half its side (IoU 0.15 * 0.3 / (2 * 0.09 - 0.045) = 1/3).
  # A 0.05 x 0.05 object that no prior overlaps.
  gt = np.array([[0.1, 0.1, 0.4, 0.4], [0.8, 0.8, 0.85, 0.85]])
  priors = np.array([[0.25, 0.25, 0.3, 0.3], [0.25, 0.4, 0.3, 0.3]])  # cy, cx, h, w
  at_half = {r['size']: r for r in prior_coverage.coverage_by_size(gt, priors, 0.5)}
  assert at_half['all']['objects'] == 2
  assert np.isclose(at_half['all']['priors_per_object'], 0.5)
  assert np.isclose(at_half['all']['covered'], 0.5)
  assert at_half['0.2-0.4']['priors_per_object'] == 1
  assert at_half['0.0-0.1']['covered'] == 0
  assert np.isnan(at_half['0.4-1.0']['covered'])  # no object that large
  at_third = {r['size']: r for r in prior_coverage.coverage_by_size(gt, priors, 0.33)}
  assert at_third['0.2-0.4']['priors_per_object'] == 2
  assert at_third['0.0-0.1']['priors_per_object'] == 0
