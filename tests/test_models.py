"""Model output shapes, parameter count and feature map sizes against the paper."""

from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from configs import shapes
from configs import smoke
from configs import ssd512_voc
from ssd_jax import describe
from ssd_jax import models
from ssd_jax import train
from ssd_jax.models import vgg
from tests import model_setup


def summarize(config):
  return describe.describe(config, model_setup.default_boxes(config))


class ModelTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('ssd300', default.get_config, [38, 19, 10, 5, 3, 1]),
      ('ssd512', ssd512_voc.get_config, [64, 32, 16, 8, 4, 2, 1]))
  def test_output_shapes_match_priors(self, get_config, map_sizes):
    config = get_config()
    self.assertEqual(models.feature_map_sizes(config.model.arch, config.model.input_size),
                     map_sizes)
    model = model_setup.create_model(config)
    size = config.model.input_size
    images = jnp.zeros((2, size, size, 3))
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
    loc, conf = jax.eval_shape(model.apply, variables, images)
    num_priors = model_setup.default_boxes(config).boxes.shape[0]
    self.assertEqual(loc.shape, (2, num_priors, 4))
    self.assertEqual(conf.shape, (2, num_priors, 21))

  def test_ssd300_parameter_count(self):
    # The reference SSD300 VOC model (Caffe / ssd.pytorch) has 26,285,486 parameters.
    self.assertEqual(summarize(default.get_config())['num_params'], 26_285_486)

  @parameterized.parameters(('float32', None), ('bfloat16', None), ('float32', 'group'),
                            ('float32', 'batch'))
  @pytest.mark.slow  # Four model compiles: the full suite only.
  def test_narrow_variant_runs(self, dtype, norm):
    config = smoke.get_config()
    config.model.dtype = dtype
    config.model.norm = norm
    model = model_setup.create_model(config)
    images = jax.random.normal(jax.random.PRNGKey(1), (2, 96, 96, 3))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), images)
    loc, conf = jax.jit(model.apply)(variables, images)
    self.assertEqual('batch_stats' in variables, norm == 'batch')
    num_priors = model_setup.default_boxes(config).boxes.shape[0]
    self.assertEqual(num_priors, 144 * 4 + 36 * 6 + 9 * 6 + 4 * 4)
    self.assertEqual(loc.shape, (2, num_priors, 4))
    self.assertEqual(conf.shape, (2, num_priors, len(config.input.class_names) + 1))
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
    self.assertNotIn('evaluated at', text)

  def test_describe_lists_the_eval_scales(self):
    text = describe.format_summary(summarize(shapes.get_config()))
    self.assertIn('evaluated at: 224 px (maps 0-1), 128 px (maps 0-5), 96 px (maps 2-5)', text)


def stacked_smoke():
  """smoke (maps 12, 6, 3, 2) with map 1 carrying two stacked scales, 11 boxes per cell."""
  config = smoke.get_config()
  config.anchors.stacked_scales = ((), ((10, 14, (2,)), (7.5, None, ())), (), ())
  return config


class StackedScalesTest(parameterized.TestCase):
  """A map with stacked scales (anchors.stacked_scales): the heads follow its box count."""

  def test_heads_have_the_channels_of_the_boxes_per_cell(self):
    config = stacked_smoke()
    per_cell = model_setup.default_boxes(config).boxes_per_cell
    # By hand: smoke's ratios (2,), (2, 3), (2, 3), (2,) give 4, 6, 6, 4; map 1 also gets
    # (10, 14, (2,)): 1 + 1 + 2 and (7.5, None, ()): 1.
    self.assertEqual(per_cell, (4, 11, 6, 4))
    model = model_setup.create_model(config)
    images = jnp.zeros((1, 96, 96, 3))
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
    params = variables['params']
    classes = len(config.input.class_names) + 1
    self.assertEqual([params[f'loc_{i}']['kernel'].shape[-1] for i in range(4)],
                     [4 * k for k in (4, 11, 6, 4)])
    self.assertEqual([params[f'conf_{i}']['kernel'].shape[-1] for i in range(4)],
                     [classes * k for k in (4, 11, 6, 4)])
    loc, conf = jax.eval_shape(model.apply, variables, images)
    num_priors = 144 * 4 + 36 * 11 + 9 * 6 + 4 * 4
    self.assertEqual(loc.shape, (1, num_priors, 4))
    self.assertEqual(conf.shape, (1, num_priors, classes))
    self.assertEqual(model_setup.default_boxes(config).boxes.shape, (num_priors, 4))

  def test_describe_lists_the_stacked_scales(self):
    summary = summarize(stacked_smoke())
    self.assertEqual(summary['layers'][1]['stacked_scales'], [[10, 14, [2]], [7.5, None, []]])
    self.assertEqual(summary['layers'][1]['priors'], 36 * 11)
    text = describe.format_summary(summary)
    self.assertIn('+ 2 stacked scales 7.5 .. 14.0 px', text)

  @pytest.mark.slow
  def test_a_train_step_with_stacked_scales(self):
    """One optimizer step of the model with stacked scales on a batch (one 8.6 px object per
    image, [y0, x0, y1, x1]): the loss is finite and the stacked map's head changes."""
    config = stacked_smoke()
    priors = model_setup.default_boxes(config)
    model = model_setup.create_model(config)
    state = train.create_train_state(config, model, jax.random.PRNGKey(0))
    batch = {'image': jax.random.normal(jax.random.PRNGKey(1), (4, 96, 96, 3)),
             'boxes': jnp.tile(jnp.asarray([[[0.04, 0.04, 0.13, 0.13]]]), (4, 16, 1)),
             'labels': jnp.ones((4, 16), jnp.int32),
             'mask': jnp.zeros((4, 16), bool).at[:, 0].set(True)}
    step = jax.jit(lambda s, b: train.train_step(s, b, jnp.asarray(priors.boxes), config))
    new_state, metrics = step(state, batch)
    self.assertTrue(np.isfinite(float(metrics['loss'])))
    before, after = (s.params['loc_1']['kernel'] for s in (state, new_state))
    self.assertGreater(float(jnp.abs(after - before).max()), 0.0)


def test_l2norm_rsqrt_form_is_the_same_forward():
  """The int8 TFLite export's L2Norm (no division) equals the model's, zero vectors included."""
  norm = vgg.L2Norm()
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 16)) * 3
  x = x.at[0, 1, 2].set(0.0)
  variables = norm.init(jax.random.PRNGKey(1), x)
  want = jax.jit(norm.apply)(variables, x)
  got = jax.jit(lambda v, x: norm.apply(v, x, method=vgg.L2Norm.rsqrt_form))(variables, x)
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(got[0, 1, 2], 0.0)
  # And the formula itself, in numpy: x / |x| * 20.
  ref = np.asarray(x) / np.sqrt(np.sum(np.asarray(x) ** 2, -1, keepdims=True) + 1e-10) * 20
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


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


def base_config(**model):
  """The smoke config at width 1 (channels as written) with `model` overrides."""
  config = smoke.get_config()
  config.model.width = 1.0
  for key, value in model.items():
    config.model[key] = value
  return config


def param_shapes(config):
  model = model_setup.create_model(config)
  size = config.model.input_size
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)))
  return jax.tree.map(lambda x: x.shape, variables['params'])


class VggBaseTest(parameterized.TestCase):

  def test_a_non_default_base_has_the_expected_layers(self):
    config = base_config(vgg_convs=(1, 1, 2, 1, 2), vgg_channels=(16, 24, 32, 40, 48),
                         fc_channels=56, conv3_source=True)
    shapes = param_shapes(config)
    base = shapes['vgg16']
    expected = {  # name: (kh, kw, in, out), by hand from the config above
        'conv1_1': (3, 3, 3, 16), 'conv2_1': (3, 3, 16, 24), 'conv3_1': (3, 3, 24, 32),
        'conv3_2': (3, 3, 32, 32), 'conv4_1': (3, 3, 32, 40), 'conv5_1': (3, 3, 40, 48),
        'conv5_2': (3, 3, 48, 48), 'conv6': (3, 3, 48, 56), 'conv7': (1, 1, 56, 56)}
    self.assertEqual({k: v['conv']['kernel'] for k, v in base.items() if 'norm' not in k},
                     expected)
    self.assertEqual({k: v['conv']['bias'] for k, v in base.items() if 'norm' not in k},
                     {k: (v[-1],) for k, v in expected.items()})
    self.assertEqual(base['conv3_norm'], {'scale': (32,)})  # conv3's last conv
    self.assertEqual(base['conv4_3_norm'], {'scale': (40,)})  # conv4's last (conv4_1)
    self.assertEqual(shapes['conv8_1']['conv']['kernel'], (1, 1, 56, 256))
    # Heads: one per source map, conv3 first (32 channels), then conv4 (40) and conv7 (56).
    self.assertEqual([shapes[f'loc_{i}']['kernel'][2] for i in range(3)], [32, 40, 56])

  @parameterized.parameters((128, [32, 16, 8, 4]), (100, [25, 13, 7, 4]))
  def test_conv3_source_map_sizes_match_the_model(self, size, sizes):
    # By hand: pool1, pool2 (ceil) -> conv3; pool3 -> conv4_3; pool4 -> conv7; conv8_2 stride 2.
    self.assertEqual(models.feature_map_sizes('ssd300', size, 4, conv3_source=True), sizes)
    config = base_config(input_size=size, conv3_source=True, width=0.125)
    base = vgg.VGG16(width=0.125, conv3_source=True)
    images = jnp.zeros((1, size, size, 3))
    maps = jax.eval_shape(lambda: base.init_with_output(jax.random.PRNGKey(0), images)[0])
    self.assertEqual([m.shape[1] for m in maps], sizes[:3])
    self.assertEqual([m.shape[2] for m in maps], sizes[:3])
    per_cell = model_setup.default_boxes(config).boxes_per_cell
    self.assertEqual(list(per_cell), [4, 6, 6, 4])  # smoke's ratios (2,), (2, 3), (2, 3), (2,)
    model = model_setup.create_model(config)
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
    loc, conf = jax.eval_shape(model.apply, variables, images)
    num_priors = sum(s * s * b for s, b in zip(sizes, [4, 6, 6, 4]))
    self.assertEqual(loc.shape, (1, num_priors, 4))
    self.assertEqual(conf.shape[1], num_priors)
    self.assertEqual(model_setup.default_boxes(config).boxes.shape, (num_priors, 4))

  @parameterized.parameters(({'vgg_convs': (2, 2, 3, 3)}, 'vgg_convs'),
                            ({'vgg_convs': (2, 0, 3, 3, 3)}, 'vgg_convs'),
                            ({'vgg_channels': (64, 128, 0, 512, 512)}, 'vgg_channels'),
                            ({'fc_channels': 0}, 'fc_channels'))
  def test_bad_base_values_are_named(self, overrides, key):
    config = base_config(**overrides)
    with self.assertRaisesRegex(ValueError, f'model.{key}'):
      model_setup.create_model(config)
