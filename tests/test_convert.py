"""PyTorch weights -> ssd_jax: the converters on numpy state dicts with torchvision's exact key
names and shapes (saved as .safetensors, no torch needed), fine-tuning with init_parts, and the
bad inputs."""

import os
import re

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors import numpy as st

from configs import default
from configs import smoke
from configs import torchvision_ssd300
from ssd_jax import convert
from ssd_jax import errors
from ssd_jax import file_io
from ssd_jax import pretrained
from ssd_jax import state_dicts
from tests import command_line
from tests import model_setup


def random_state(shapes: dict, seed=0) -> dict:
  rng = np.random.default_rng(seed)
  return {k: rng.standard_normal(s, dtype=np.float32) * 0.05 for k, s in shapes.items()}


def vgg16_shapes() -> dict:
  """torchvision.models.vgg16().state_dict() names and shapes, written out."""
  convs = [(0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
           (14, 256, 256), (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512),
           (26, 512, 512), (28, 512, 512)]
  shapes = {}
  for i, out, c_in in convs:
    shapes[f'features.{i}.weight'] = (out, c_in, 3, 3)
    shapes[f'features.{i}.bias'] = (out,)
  shapes.update({'classifier.0.weight': (4096, 25088), 'classifier.0.bias': (4096,),
                 'classifier.3.weight': (4096, 4096), 'classifier.3.bias': (4096,),
                 'classifier.6.weight': (1000, 4096), 'classifier.6.bias': (1000,)})
  return shapes


def torchvision_ssd300_shapes(num_labels=91) -> dict:
  """torchvision ssd300_vgg16().state_dict() names and shapes, written out (as printed by
  torchvision 0.29)."""
  shapes = {'backbone.scale_weight': (512,)}
  convs = [(f'backbone.features.{i}', o, c, 3) for i, o, c in [
      (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
      (14, 256, 256), (17, 512, 256), (19, 512, 512), (21, 512, 512)]]
  convs += [('backbone.extra.0.1', 512, 512, 3), ('backbone.extra.0.3', 512, 512, 3),
            ('backbone.extra.0.5', 512, 512, 3), ('backbone.extra.0.7.1', 1024, 512, 3),
            ('backbone.extra.0.7.3', 1024, 1024, 1), ('backbone.extra.1.0', 256, 1024, 1),
            ('backbone.extra.1.2', 512, 256, 3), ('backbone.extra.2.0', 128, 512, 1),
            ('backbone.extra.2.2', 256, 128, 3), ('backbone.extra.3.0', 128, 256, 1),
            ('backbone.extra.3.2', 256, 128, 3), ('backbone.extra.4.0', 128, 256, 1),
            ('backbone.extra.4.2', 256, 128, 3)]
  for i, (c, a) in enumerate([(512, 4), (1024, 6), (512, 6), (256, 6), (256, 4), (256, 4)]):
    convs += [(f'head.classification_head.module_list.{i}', a * num_labels, c, 3),
              (f'head.regression_head.module_list.{i}', a * 4, c, 3)]
  for name, out, c_in, k in convs:
    shapes[f'{name}.weight'] = (out, c_in, k, k)
    shapes[f'{name}.bias'] = (out,)
  return shapes


def model_shapes(config) -> dict:
  """'/'-joined param path -> shape of the model `config` builds (no computation)."""
  model = model_setup.create_model(config)
  size = config.model.input_size
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)))
  return {k: v.shape for k, v in
          traverse_util.flatten_dict(shapes['params'], sep='/').items()}


def flat(params) -> dict:
  return traverse_util.flatten_dict(params, sep='/')


@pytest.fixture(scope='module')
def vgg16_file(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('w') / 'vgg16.safetensors')
  st.save_file(random_state(vgg16_shapes()), path)
  return path


def test_decimate_keeps_every_nth_entry_from_the_first():
  x = np.arange(2 * 8 * 7).reshape(8, 2, 7)
  np.testing.assert_array_equal(convert.decimate(x, (4, None, 3)),
                                x[[0, 4]][:, :, [0, 3, 6]])


def test_vgg16_conversion(vgg16_file, tmp_path, capsys):
  state = st.load_file(vgg16_file)
  out = str(tmp_path / 'vgg16')
  convert.convert('vgg16', vgg16_file, out)
  assert 'Converted 30 arrays' in capsys.readouterr().out
  params = flat(pretrained.load(out))
  # Names and shapes: exactly the base of the paper's SSD300 (and SSD512).
  base = {k: v for k, v in model_shapes(default.get_config()).items()
          if pretrained.part_of(k) == 'base'}
  assert {k: tuple(v.shape) for k, v in params.items()} == base
  # conv1_2: OIHW -> HWIO.
  np.testing.assert_array_equal(params['vgg16/conv1_2/conv/kernel'][1, 2, 5, 7],
                                state['features.2.weight'][7, 5, 1, 2])
  # Decimation, by hand: conv6 output 1 = fc6 row 4; input channel 2, kernel position (1, 2)
  # = fc6 column 2 * 49 + (3 * 1) * 7 + (3 * 2) = 125.
  np.testing.assert_array_equal(params['vgg16/conv6/conv/kernel'][1, 2, 2, 1],
                                state['classifier.0.weight'][4, 125])
  np.testing.assert_array_equal(params['vgg16/conv6/conv/kernel'][2, 0, 511, 1023],
                                state['classifier.0.weight'][4092, 511 * 49 + 6 * 7 + 0])
  np.testing.assert_array_equal(params['vgg16/conv6/conv/bias'][:3],
                                state['classifier.0.bias'][[0, 4, 8]])
  # conv7 [1, 1, 1024, 1024]: input 3, output 5 = fc7 row 20, column 12.
  np.testing.assert_array_equal(params['vgg16/conv7/conv/kernel'][0, 0, 3, 5],
                                state['classifier.3.weight'][20, 12])
  np.testing.assert_array_equal(params['vgg16/conv7/conv/bias'][-1],
                                state['classifier.3.bias'][4092])


def test_vgg16_reducedfc_conversion_loads_into_ssd512_with_any_class_count(tmp_path):
  # ssd.pytorch's vgg16_reducedfc.pth: keys numbered as its VGG layer list, conv6 = 31, conv7 = 33.
  convs = [(0, 64, 3, 3), (2, 64, 64, 3), (5, 128, 64, 3), (7, 128, 128, 3), (10, 256, 128, 3),
           (12, 256, 256, 3), (14, 256, 256, 3), (17, 512, 256, 3), (19, 512, 512, 3),
           (21, 512, 512, 3), (24, 512, 512, 3), (26, 512, 512, 3), (28, 512, 512, 3),
           (31, 1024, 512, 3), (33, 1024, 1024, 1)]
  shapes = {}
  for i, out, c_in, k in convs:
    shapes.update({f'{i}.weight': (out, c_in, k, k), f'{i}.bias': (out,)})
  state = random_state(shapes, seed=1)
  path = str(tmp_path / 'vgg16_reducedfc.npz')
  np.savez(path, **state)
  out = str(tmp_path / 'base')
  convert.convert('vgg16-reducedfc', path, out)
  loaded = pretrained.load(out)
  np.testing.assert_array_equal(flat(loaded)['vgg16/conv6/conv/kernel'],
                                state['31.weight'].transpose(2, 3, 1, 0))
  config = default.get_config()
  config.model.arch, config.model.input_size = 'ssd512', 512
  config.input.class_names = ('a', 'b', 'c', 'd', 'e')
  config.anchors.min_sizes = config.anchors.max_sizes = config.anchors.steps = None
  config.anchors.aspect_ratios = ((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,))
  params = {k: np.zeros(s, np.float32) for k, s in model_shapes(config).items()}
  params = traverse_util.unflatten_dict(params, sep='/')
  merged, loaded_paths, fresh = pretrained.select(params, loaded, 'base', out)
  assert len(loaded_paths) == 30
  assert {pretrained.part_of(p) for p, _ in fresh} == {'extras', 'box_head', 'class_head'}
  np.testing.assert_array_equal(flat(merged)['vgg16/conv3_3/conv/bias'], state['14.bias'])
  with pytest.raises(errors.UserError,
                     match=r"init_parts=.base\+extras. takes.*lacks 21 of their arrays \(conv10_1"):
    pretrained.select(params, loaded, 'base+extras', out)


def _conv_nchw(x, weight, bias):
  """Numpy 3x3 / pad 1 convolution as torch computes it: x [C, H, W], weight [O, C, 3, 3]."""
  c, h, w = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
  patches = np.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1)
  return np.einsum('chwk,ock->ohw', patches, weight.reshape(len(weight), c, 9)) + bias[:, None,
                                                                                      None]


def test_the_config_goes_with_torchvision_ssd300_only(vgg16_file, tmp_path):
  out = str(tmp_path / 'out')
  with pytest.raises(errors.UserError, match=r'^torchvision-ssd300 needs --config, the config '
                     r'of the workdir it writes: --config=configs/torchvision_ssd300.py\.$'):
    convert.convert('torchvision-ssd300', vgg16_file, out)
  with pytest.raises(errors.UserError, match=r'^vgg16 writes weights without a config; '
                     r'--config is for torchvision-ssd300 only\.$'):
    convert.convert('vgg16', vgg16_file, out, smoke.get_config())
  assert not os.path.exists(out)


@pytest.mark.slow  # Heavy compiles: the full suite only (quick tier ~ 2 min).
def test_torchvision_ssd300_conversion(tmp_path):
  state = random_state(torchvision_ssd300_shapes(), seed=2)
  path = str(tmp_path / 'ssd300.safetensors')
  st.save_file(state, path)
  out = str(tmp_path / 'workdir')
  convert.convert('torchvision-ssd300', path, out, torchvision_ssd300.get_config())
  assert os.path.exists(os.path.join(out, 'config.json'))
  config = torchvision_ssd300.get_config()
  params = pretrained.load(out)
  assert {k: tuple(v.shape) for k, v in flat(params).items()} == model_shapes(config)
  np.testing.assert_array_equal(flat(params)['vgg16/conv4_3_norm/scale'],
                                state['backbone.scale_weight'])
  np.testing.assert_array_equal(flat(params)['vgg16/conv5_2/conv/bias'],
                                state['backbone.extra.0.3.bias'])

  # The heads on conv4_3: our outputs against torchvision's computation redone in numpy.
  model = model_setup.create_model(config)
  image = np.random.default_rng(3).uniform(-100, 100, (1, 300, 300, 3)).astype(np.float32)
  (loc, conf), inter = model.apply({'params': params}, image,
                                   capture_intermediates=lambda m, _: m.name == 'vgg16')
  conv4_3 = np.asarray(inter['intermediates']['vgg16']['__call__'][0][0][0])  # [38, 38, 512]
  source = conv4_3.transpose(2, 0, 1)
  n = 38 * 38 * 4
  for head, ours, width in (('regression', loc, 4), ('classification', conf, 91)):
    name = f'head.{head}_head.module_list.0'
    out_map = _conv_nchw(source, state[f'{name}.weight'], state[f'{name}.bias'])
    # torchvision: view(N, A, K, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, K).
    theirs = out_map.reshape(4, width, 38, 38).transpose(2, 3, 0, 1).reshape(-1, width)
    if head == 'regression':
      theirs = theirs[:, [1, 0, 3, 2]]  # (dx, dy, dw, dh) -> (dy, dx, dh, dw)
    np.testing.assert_allclose(np.asarray(ours[0, :n]), theirs, rtol=1e-4,
                               atol=1e-4 * np.abs(theirs).max())


def test_state_dict_of_another_architecture_lists_missing_and_extra(vgg16_file, tmp_path):
  with pytest.raises(errors.UserError, match=r'--input=.*vgg16\.safetensors: this is not a '
                     r'reduced-fc VGG16.*30 missing: 0\.bias.*32 unexpected: classifier'):
    convert.convert('vgg16-reducedfc', vgg16_file, str(tmp_path / 'out'))
  assert not os.listdir(tmp_path)


def test_missing_and_misshapen_keys_are_named(tmp_path):
  state = random_state(torchvision_ssd300_shapes(), seed=4)
  del state['backbone.extra.2.2.bias']
  state['backbone.extra.1.0.weight'] = state['backbone.extra.1.0.weight'][:5]
  with pytest.raises(errors.UserError, match=r'1 missing: backbone\.extra\.2\.2\.bias; 1 with '
                     r'another shape: backbone\.extra\.1\.0\.weight \(5, 1024, 1, 1\)'):
    convert.from_torchvision_ssd300(state)


def test_pth_without_torch_says_how_to_make_safetensors(tmp_path):
  path = tmp_path / 'vgg16.pth'
  path.write_bytes(b'PK\x03\x04 not read')
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    pytest.skip('torch is installed here')
  except ImportError:
    pass
  with pytest.raises(errors.UserError, match=r'needs torch.*safetensors\.torch.*save_file'):
    state_dicts.load(str(path))


def test_existing_output_is_refused_and_left_alone(vgg16_file, tmp_path):
  out = tmp_path / 'exists'
  out.mkdir()
  with pytest.raises(errors.UserError, match='exists; give a new folder'):
    convert.convert('vgg16', vgg16_file, str(out))
  assert not os.listdir(out)


def test_failed_write_leaves_nothing(tmp_path):
  def fail(tmp):
    os.makedirs(os.path.join(tmp, 'checkpoints'))
    raise OSError(28, 'No space left on device', tmp)
  with pytest.raises(OSError):
    file_io.write_folder_atomically(str(tmp_path / 'out'), fail)
  assert not os.listdir(tmp_path)


def test_fine_tuning_to_another_class_count(tmp_path, capsys):
  source = smoke.get_config()  # 8 classes
  shapes = model_shapes(source)
  params = traverse_util.unflatten_dict(random_state(shapes, seed=5), sep='/')
  convert.save_workdir(str(tmp_path / 'run'), source, params)
  target = smoke.get_config()
  target.input.class_names = ('a', 'b', 'c')
  target.init_from = str(tmp_path / 'run')
  fresh_params = traverse_util.unflatten_dict(
      {k: np.full(s, 7.0, np.float32) for k, s in model_shapes(target).items()}, sep='/')
  merged = flat(pretrained.initialize(fresh_params, target))
  out = capsys.readouterr().out
  assert f'Initialized {len(shapes) - 8} arrays from {target.init_from}.' in out
  assert 're-initialised 8 arrays (conf_0, conf_1, conf_2, conf_3): another class count' in out
  assert '(9 scores per box in' in out and ', 4 in the model)' in out
  for path, value in merged.items():
    if pretrained.part_of(path) == 'class_head':
      assert (np.asarray(value) == 7.0).all(), path
    else:
      np.testing.assert_array_equal(value, flat(params)[path])
  target.init_parts = 'all_but_class_head'
  pretrained.initialize(fresh_params, target)
  assert "re-initialised 8 arrays (conf_0, conf_1, conf_2, conf_3): config.init_parts=" \
         "'all_but_class_head' does not take the class_head" in capsys.readouterr().out


def test_torchvision_default_boxes():
  """configs/torchvision_ssd300.py's boxes against torchvision's DefaultBoxGenerator (clip=True)
  redone in numpy: (cx, cy, w, h) per cell, pairs [s, s], [s', s'], then [w, h], [h, w] per
  ratio, w and h clamped to [0, 1]."""
  scales = torchvision_ssd300.TORCHVISION_SCALES
  ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
  boxes = []
  for k, (f, step) in enumerate(zip([38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300])):
    s, s_prime = scales[k], np.sqrt(scales[k] * scales[k + 1])
    wh = [[s, s], [s_prime, s_prime]]
    for r in ratios[k]:
      wh += [[s * np.sqrt(r), s / np.sqrt(r)], [s / np.sqrt(r), s * np.sqrt(r)]]
    wh = np.clip(np.asarray(wh), 0, 1)
    centres = (np.arange(f) + 0.5) / (300 / step)
    cy, cx = np.meshgrid(centres, centres, indexing='ij')
    for y, x in zip(cy.ravel(), cx.ravel()):
      boxes += [[x, y, w, h] for w, h in wh]
  theirs = np.asarray(boxes)[:, [1, 0, 3, 2]]  # -> (cy, cx, h, w)
  ours = model_setup.default_boxes(torchvision_ssd300.get_config()).boxes
  np.testing.assert_allclose(ours, theirs, atol=1e-6)
  assert (theirs[:, 2:] == 1).any()  # the cap matters for these scales


def test_postprocess_clamps_sizes_and_clips_boxes_when_asked():
  from ssd_jax import postprocess  # pylint: disable=g-import-not-at-top
  priors = jnp.asarray([[0.5, 0.5, 0.2, 0.2]])
  loc = jnp.asarray([[[0.0, 0.0, 40.0, 0.0]]])  # h * exp(40 * 0.2): far beyond the image
  logits = jnp.asarray([[[0.0, 5.0]]])
  plain = postprocess.detect(loc, logits, priors, max_detections=1)
  tv = postprocess.detect(loc, logits, priors, max_detections=1, clip_boxes=True,
                          max_size_offset=float(np.log(1000 / 16)))
  h = 0.2 * np.exp(8.0)
  np.testing.assert_allclose(plain['boxes'][0, 0], [0.5 - h / 2, 0.4, 0.5 + h / 2, 0.6],
                             rtol=1e-5)
  np.testing.assert_allclose(tv['boxes'][0, 0], [0.0, 0.4, 1.0, 0.6], rtol=1e-6)
  small = postprocess.detect(jnp.asarray([[[0.0, 0.0, 25.0, 0.0]]]), logits, priors,
                             max_detections=1, max_size_offset=float(np.log(1000 / 16)))
  h = 0.2 * 1000 / 16  # clamped at log(1000 / 16) = 4.14 instead of 25 * 0.2 = 5
  np.testing.assert_allclose(small['boxes'][0, 0], [0.5 - h / 2, 0.4, 0.5 + h / 2, 0.6],
                             rtol=1e-5)


def test_of_two_concurrent_writers_of_one_folder_the_second_fails_and_keeps_nothing(tmp_path):
  out = str(tmp_path / 'out')
  def slow(tmp):  # Another command writes and renames `out` while this one is still writing.
    with open(os.path.join(tmp, 'mine'), 'w') as f:
      f.write('half')
    file_io.write_folder_atomically(out, lambda other: open(os.path.join(other, 'theirs'), 'w')
                                    .close())
  with pytest.raises(errors.UserError, match=r'out appeared while this command was writing it'):
    file_io.write_folder_atomically(out, slow)
  assert os.listdir(tmp_path) == ['out'] and os.listdir(out) == ['theirs']


@pytest.mark.slow
@pytest.mark.parametrize('case', ['missing_input', 'another_architecture', 'pth_without_torch'])
def test_command_errors_are_one_line(case, tmp_path):
  """`python -m ssd_jax.convert` itself: exit status 1, one error line, no traceback, no
  output folder."""
  out = str(tmp_path / 'out')
  if case == 'missing_input':
    source, path, pattern = 'vgg16', str(tmp_path / 'nope.safetensors'), 'no such file: .*nope'
  elif case == 'another_architecture':
    path = str(tmp_path / 'other.safetensors')
    st.save_file({'fc.weight': np.zeros((2, 3), np.float32)}, path)
    source, pattern = 'torchvision-ssd300', r"not a torchvision 'ssd300_vgg16'.*missing.*fc\.weight"
  else:
    path = str(tmp_path / 'vgg16.pth')
    with open(path, 'wb') as f:
      f.write(b'PK\x03\x04 not read')
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
      pytest.skip('torch is installed here')
    except ImportError:
      pass
    source, pattern = 'vgg16', r'vgg16\.pth: reading a PyTorch file needs torch'
  config = ['--config=configs/torchvision_ssd300.py'] if source == 'torchvision-ssd300' else []
  result = command_line.run('ssd_jax.convert', source, f'--input={path}', f'--output={out}',
                            *config)
  command_line.assert_one_error_line(result, 'ssd_jax.convert', pattern)
  assert not os.path.exists(out)


@pytest.mark.parametrize('model, parts, expect', [
    # Another channel profile: one line naming the arrays and the keys that change shapes.
    ({'vgg_channels': (64, 128, 256, 512, 256)}, 'base',
     r'7 arrays differ in shape .*vgg_channels.*vgg16/conv5_1/conv/bias \(64,\) in '),
    ({'fc_channels': 512}, 'all', r'4 arrays differ in shape .*fc_channels.*vgg16/conv6/'),
    # A deeper block: conv3_4 is missing from a VGG16 base.
    ({'vgg_convs': (2, 2, 4, 3, 3)}, 'base', r'lacks 2 of their arrays \(vgg16/conv3_4/.*vgg_convs'),
    # Loads: the conv3 L2Norm scale is an extra (not in VGG16), like conv4_3's.
    ({'conv3_source': True}, 'base', r'Initialized 30 arrays.*'
     r're-initialised 6 arrays \(conv8_1, conv8_2, vgg16/conv3_norm, vgg16/conv4_3_norm\): '
     r"config.init_parts='base' does not take the extras"),
    # Loads, and says which layers of the checkpoint the shallower base has no use for.
    ({'vgg_convs': (2, 2, 2, 3, 3)}, 'base', r'Initialized 28 arrays.*not used: the arrays of '
     r'vgg16/conv3_3: this model has no such layer'),
])
def test_a_vgg16_base_into_another_base_is_one_clear_message(model, parts, expect, tmp_path,
                                                             capsys):
  """The layout `convert vgg16` writes (test_vgg16_conversion), at the smoke config's width."""
  def params(config):
    return traverse_util.unflatten_dict(
        {k: np.ones(s, np.float32) for k, s in model_shapes(config).items()}, sep='/')
  vgg16 = {k: v for k, v in params(smoke.get_config())['vgg16'].items() if 'norm' not in k}
  convert.save_params(str(tmp_path), {'vgg16': vgg16}, {'source': 'vgg16'})
  config = smoke.get_config()
  config.model.update(model)
  config.init_from, config.init_parts = str(tmp_path), parts
  try:
    pretrained.initialize(params(config), config)
    text = ' '.join(capsys.readouterr().out.split())
  except errors.UserError as e:
    assert '\n' not in str(e)
    text = str(e)
  assert re.search(expect, text), text


@pytest.mark.parametrize('value, problem', [
    (np.nan, r'has 1 non-finite values of 1728 \(1 NaN, 0 inf\); refusing weights that '
     r'would make every loss NaN'),
    (np.inf, r'has 1 non-finite values of 1728 \(0 NaN, 1 inf\); refusing weights that '
     r'would make every loss NaN'),
    (None, r'is int32, not floating point \(weights are not cast from integers\)'),
])
def test_non_finite_or_integer_weights_are_refused(vgg16_file, value, problem, tmp_path):
  state = dict(st.load_file(vgg16_file))
  if value is None:
    state['features.0.weight'] = np.ones((64, 3, 3, 3), np.int32)
  else:
    state['features.0.weight'][5, 1, 2, 0] = value
  path = str(tmp_path / 'bad.safetensors')
  st.save_file(state, path)
  with pytest.raises(errors.UserError, match=rf'^--input=.*bad\.safetensors: tensor '
                     rf'features\.0\.weight {problem}\.$'):
    convert.convert('vgg16', path, str(tmp_path / 'out'))
  assert not os.path.exists(tmp_path / 'out')


@pytest.mark.parametrize('value, problem', [
    (np.nan, r'has 2 non-finite values of \d+ \(2 NaN, 0 inf\)'),
    (-np.inf, r'has 2 non-finite values of \d+ \(0 NaN, 2 inf\)'),
])
def test_init_from_refuses_non_finite_weights_naming_the_array(value, problem, tmp_path):
  config = smoke.get_config()
  params = traverse_util.unflatten_dict(
      {k: np.ones(s, np.float32) for k, s in model_shapes(config).items()}, sep='/')
  bad = jax.tree.map(np.copy, params)
  bad['vgg16']['conv2_1']['conv']['kernel'].reshape(-1)[[3, 7]] = value
  convert.save_params(str(tmp_path), bad, {'source': 'test'})
  config.init_from, config.init_parts = str(tmp_path), 'all'
  with pytest.raises(errors.UserError, match=rf'^config.init_from={re.escape(str(tmp_path))}: '
                     rf'array vgg16/conv2_1/conv/kernel {problem}; refusing weights'):
    pretrained.initialize(params, config)
  # The same arrays, finite, load.
  convert.save_params(str(tmp_path / 'ok'), params, {'source': 'test'})
  config.init_from = str(tmp_path / 'ok')
  pretrained.initialize(params, config)
