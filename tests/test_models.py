"""Model output shapes, parameter count and feature map sizes against the paper."""

from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from configs import smoke
from configs import ssd512_voc
from ssd_jax import anchors
from ssd_jax import describe
from ssd_jax import models


def summarize(config):
  return describe.describe(config, anchors.from_config(config))


class ModelTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('ssd300', default.get_config, [38, 19, 10, 5, 3, 1]),
      ('ssd512', ssd512_voc.get_config, [64, 32, 16, 8, 4, 2, 1]))
  def test_output_shapes_match_priors(self, get_config, map_sizes):
    config = get_config()
    self.assertEqual(models.feature_map_sizes(config.model.arch, config.model.input_size),
                     map_sizes)
    model = models.create_model(config.model, anchors.boxes_per_cell(config))
    size = config.model.input_size
    images = jnp.zeros((2, size, size, 3))
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
    loc, conf = jax.eval_shape(model.apply, variables, images)
    num_priors = anchors.default_boxes(config).shape[0]
    self.assertEqual(loc.shape, (2, num_priors, 4))
    self.assertEqual(conf.shape, (2, num_priors, 21))

  def test_ssd300_parameter_count(self):
    # The reference SSD300 VOC model (Caffe / ssd.pytorch) has 26,285,486 parameters.
    self.assertEqual(summarize(default.get_config())['num_params'], 26_285_486)

  @parameterized.parameters(('float32', None), ('bfloat16', None), ('float32', 'group'),
                            ('float32', 'batch'))
  def test_narrow_variant_runs(self, dtype, norm):
    config = smoke.get_config()
    config.model.dtype = dtype
    config.model.norm = norm
    model = models.create_model(config.model, anchors.boxes_per_cell(config))
    images = jax.random.normal(jax.random.PRNGKey(1), (2, 96, 96, 3))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), images)
    loc, conf = jax.jit(model.apply)(variables, images)
    self.assertEqual('batch_stats' in variables, norm == 'batch')
    num_priors = anchors.default_boxes(config).shape[0]
    self.assertEqual(num_priors, 144 * 4 + 36 * 6 + 9 * 6 + 4 * 4)
    self.assertEqual(loc.shape, (2, num_priors, 4))
    self.assertEqual(conf.shape, (2, num_priors, config.model.num_classes + 1))
    self.assertEqual(loc.dtype, jnp.float32)  # outputs in fp32 whatever the compute dtype
    self.assertTrue(all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables)))
    scale = variables['params']['vgg16']['conv4_3_norm']['scale']
    np.testing.assert_array_equal(scale, 20.0)  # L2Norm scale starts at 20
    conv1 = variables['params']['vgg16']['conv1_1']
    self.assertEqual('norm' in conv1, norm is not None)
    self.assertEqual('bias' in conv1['conv'], norm is None)  # GroupNorm makes it redundant
    self.assertTrue(np.all(np.isfinite(loc)) and np.all(np.isfinite(conf)))

  def test_too_small_input_is_a_clear_error(self):
    with self.assertRaisesRegex(ValueError, 'too small for ssd300'):
      models.feature_map_sizes('ssd300', 96)

  def test_describe_summary(self):
    summary = summarize(default.get_config())
    self.assertEqual([l['priors'] for l in summary['layers']], [5776, 2166, 600, 150, 36, 4])
    self.assertEqual(summary['total_priors'], 8732)
    text = describe.format_summary(summary)
    self.assertIn('total priors: 8732', text)
    self.assertIn('26,285,486', text)


class PoolingTest(parameterized.TestCase):

  @parameterized.parameters((75, 75), (38, 19), (1, 1))
  def test_pools_equal_flax_max_pool(self, h, w):
    from flax import linen as nn  # pylint: disable=g-import-not-at-top
    from ssd_jax.models import vgg  # pylint: disable=g-import-not-at-top
    x = jax.random.normal(jax.random.PRNGKey(0), (2, h, w, 3))
    want = nn.max_pool(x, (2, 2), strides=(2, 2), padding=((0, h % 2), (0, w % 2)))
    np.testing.assert_array_equal(vgg.max_pool_ceil(x), want)
    self.assertEqual(vgg.max_pool_ceil(x).shape[1:3], ((h + 1) // 2, (w + 1) // 2))
    want5 = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    np.testing.assert_array_equal(vgg.max_pool_3x3_same(x), want5)

  def test_pool_gradient_routes_to_the_maximum(self):
    from ssd_jax.models import vgg  # pylint: disable=g-import-not-at-top
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 5, 5, 2))
    grad = jax.grad(lambda x: jnp.sum(vgg.max_pool_ceil(x)))(x)
    want = jax.grad(lambda x: jnp.sum(nn_pool(x)))(x)
    np.testing.assert_allclose(grad, want)


def nn_pool(x):
  from flax import linen as nn  # pylint: disable=g-import-not-at-top
  return nn.max_pool(x, (2, 2), strides=(2, 2), padding=((0, 1), (0, 1)))
