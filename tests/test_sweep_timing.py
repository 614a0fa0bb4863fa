"""experiments.sweep_timing: the 'base' it times is the model's own VGG16 base."""

import jax
import numpy as np

from configs import smoke
from experiments import sweep_timing
from ssd_jax import models


def test_the_timed_base_is_the_models_vgg16():
  config = smoke.get_config()
  model = models.create_model(config.model, models.default_boxes(config).boxes_per_cell,
                              len(config.input.class_names))
  size = config.model.input_size
  images = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 3))
  variables = model.init(jax.random.PRNGKey(1), images)
  _, captured = model.apply(variables, images, capture_intermediates=True,
                            mutable=['intermediates'])
  want = captured['intermediates']['vgg16']['__call__'][0]
  got = sweep_timing.vgg_base(config).apply(sweep_timing.base_variables(variables), images,
                                             False)
  assert len(got) == len(want) >= 2
  for a, b in zip(got, want):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # The base is most of the model, not all of it: the extra layers and heads are left out.
  full = jax.tree.leaves(variables['params'])
  base = jax.tree.leaves(sweep_timing.base_variables(variables)['params'])
  assert 0 < sum(x.size for x in base) < sum(x.size for x in full)
