r"""Command line: PyTorch weights -> an ssd_jax checkpoint folder.

  python -m ssd_jax.convert vgg16 --input=vgg16-397923af.pth --output=weights/vgg16
  python -m ssd_jax.convert vgg16-reducedfc --input=vgg16_reducedfc.pth --output=weights/vgg16r
  python -m ssd_jax.convert torchvision-ssd300 --input=ssd300_vgg16_coco-b556d3b4.pth \
      --config=configs/torchvision_ssd300.py --output=runs/torchvision_ssd300

`vgg16` and `vgg16-reducedfc` give the VGG16 base (conv1_1 .. conv7), for
`--config.init_from=<output>` with any SSD config. `torchvision-ssd300` gives a complete
workdir (checkpoint + config.json: the --config, which reproduces torchvision's processing)
for `ssd_jax.detect`, `--mode=eval` and `init_from`. Inputs: .safetensors or .npz (no torch
needed), or .pth with torch installed (read with weights_only=True: no pickle runs). The
output folder must not exist; it appears only when complete. docs/weights.md has the details.
"""

import os

from absl import app
from absl import flags
from flax import traverse_util
from ml_collections import config_flags
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from ssd_jax import checkpoints
from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax import errors
from ssd_jax import file_io
from ssd_jax import quiet
from ssd_jax import run_files
from ssd_jax import state_dicts
from ssd_jax.models import vgg

FLAGS = flags.FLAGS
PROG = 'ssd_jax.convert'


def define_flags() -> None:
  """The command's flags; defined only when run as a command, so that importing the module
  (tests, other commands with an --output flag) defines none."""
  flags.DEFINE_string('input', None, 'State dict: .safetensors, .npz, or .pth (needs torch).')
  flags.DEFINE_string('output', None, 'Folder to create (must not exist).')
  config_flags.DEFINE_config_file(
      'config', None, 'torchvision-ssd300 only: the config the workdir is saved with '
      '(configs/torchvision_ssd300.py; --config.<key>=<value> overrides a key).')
  cli.define_verbose()


# conv1_1 .. conv5_3 in VGG16 order, and their indices in torchvision's `features` list (also
# the keys of ssd.pytorch's vgg16_reducedfc.pth, which goes on with conv6 = 31, conv7 = 33).
VGG_CONVS = tuple(f'{block}_{i + 1}' for block, n, _ in vgg.VGG16_BLOCKS for i in range(n))
VGG_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
REDUCEDFC_INDICES = VGG_INDICES + (31, 33)
FC6_IN = (512, 7, 7)  # fc6 reads pool5 of a 224x224 input: 512 x 7 x 7.


def _vgg_conv_shapes() -> list[tuple[int, int, int, int]]:
  """[O, I, 3, 3] of conv1_1 .. conv5_3."""
  shapes, channels = [], 3
  for _, n, out in vgg.VGG16_BLOCKS:
    for _ in range(n):
      shapes.append((out, channels, 3, 3))
      channels = out
  return shapes


def conv_params(weight: np.ndarray, bias: np.ndarray) -> dict:
  """A torch Conv2d's weight [O, I, kh, kw] and bias [O] -> flax {'kernel' [kh, kw, I, O],
  'bias'}."""
  return {'kernel': np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)), np.float32),
          'bias': np.asarray(bias, np.float32)}


def decimate(array: np.ndarray, steps) -> np.ndarray:
  """Keeps every steps[d]-th entry (from the first) along each axis d; None keeps all."""
  return array[tuple(slice(None, None, s) for s in steps)]


def fc_to_conv(fc6_w, fc6_b, fc7_w, fc7_b) -> dict:
  """ImageNet VGG16's fc6/fc7 -> SSD's conv6 (3x3, dilation 6, 1024) and conv7 (1x1, 1024).

  This is Caffe SSD's conversion (the `VGG_ILSVRC_16_layers_fc_reduced` model of Liu et al.
  2016, Sec. 3, reproduced by ssd.pytorch's `vgg16_reducedfc.pth`): fc6 [4096, 512*7*7] is
  viewed as a 7x7 conv [4096, 512, 7, 7] and decimated to every 4th output channel (0, 4, ...,
  4092) and every 3rd spatial position (rows and columns 0, 3, 6), which with dilation 6 covers
  the same 13x13 window; fc7 [4096, 4096] keeps every 4th output and every 4th input channel.
  The biases keep every 4th entry.
  """
  conv6 = decimate(fc6_w.reshape((fc6_w.shape[0],) + FC6_IN), (4, None, 3, 3))
  conv7 = decimate(fc7_w.reshape(fc7_w.shape + (1, 1)), (4, 4, None, None))
  return {'conv6': conv_params(conv6, decimate(fc6_b, (4,))),
          'conv7': conv_params(conv7, decimate(fc7_b, (4,)))}


def _base(state, prefix: str, indices, names) -> dict:
  return {name: {'conv': conv_params(state[f'{prefix}{i}.weight'], state[f'{prefix}{i}.bias'])}
          for name, i in zip(names, indices)}


def from_vgg16(state) -> dict:
  """torchvision's ImageNet `vgg16` state dict -> {'vgg16': base params} (fc6/fc7 decimated)."""
  expected = {}
  for i, shape in zip(VGG_INDICES, _vgg_conv_shapes()):
    expected.update({f'features.{i}.weight': shape, f'features.{i}.bias': shape[:1]})
  expected.update({'classifier.0.weight': (4096, int(np.prod(FC6_IN))),
                   'classifier.0.bias': (4096,), 'classifier.3.weight': (4096, 4096),
                   'classifier.3.bias': (4096,)})
  state_dicts.check(state, expected, "torchvision ImageNet VGG16 ('vgg16')",
                    optional=('classifier.6.weight', 'classifier.6.bias'))
  base = _base(state, 'features.', VGG_INDICES, VGG_CONVS)
  fc = fc_to_conv(state['classifier.0.weight'], state['classifier.0.bias'],
                  state['classifier.3.weight'], state['classifier.3.bias'])
  return {'vgg16': {**base, **{k: {'conv': v} for k, v in fc.items()}}}


def from_vgg16_reducedfc(state) -> dict:
  """ssd.pytorch's `vgg16_reducedfc.pth` (keys '0.weight' .. '33.bias') -> base params."""
  shapes = _vgg_conv_shapes() + [(1024, 512, 3, 3), (1024, 1024, 1, 1)]
  expected = {}
  for i, shape in zip(REDUCEDFC_INDICES, shapes):
    expected.update({f'{i}.weight': shape, f'{i}.bias': shape[:1]})
  state_dicts.check(state, expected, "reduced-fc VGG16 ('vgg16-reducedfc')")
  return {'vgg16': _base(state, '', REDUCEDFC_INDICES, VGG_CONVS + ('conv6', 'conv7'))}


# torchvision ssd300_vgg16: per source map, (channels, boxes per cell).
TV_SOURCES = ((512, 4), (1024, 6), (512, 6), (256, 6), (256, 4), (256, 4))
TV_EXTRAS = (('conv8', 1024, 256, 512), ('conv9', 512, 128, 256), ('conv10', 256, 128, 256),
             ('conv11', 256, 128, 256))  # (name, in, 1x1 out, 3x3 out)
# torchvision regresses (dx, dy, dw, dh) per box; ssd_jax (dy, dx, dh, dw).
TV_TO_YX = (1, 0, 3, 2)


def torchvision_ssd300_num_classes(state) -> int:
  """Label count of a torchvision ssd300 state dict, background included (91 for COCO)."""
  key = 'head.classification_head.module_list.0.weight'
  if key not in state or state[key].shape[0] % TV_SOURCES[0][1]:
    return 91  # `check` then names what is wrong.
  return state[key].shape[0] // TV_SOURCES[0][1]


def _torchvision_expected(num_labels: int) -> dict:
  expected = {'backbone.scale_weight': (512,)}
  shapes = _vgg_conv_shapes()
  for i, shape in zip(VGG_INDICES[:10], shapes[:10]):
    expected.update({f'backbone.features.{i}.weight': shape,
                     f'backbone.features.{i}.bias': shape[:1]})
  convs = [(f'backbone.extra.0.{j}', s) for j, s in zip((1, 3, 5), shapes[10:])]
  convs += [('backbone.extra.0.7.1', (1024, 512, 3, 3)),
            ('backbone.extra.0.7.3', (1024, 1024, 1, 1))]
  for k, (_, c_in, mid, out) in enumerate(TV_EXTRAS):
    convs += [(f'backbone.extra.{k + 1}.0', (mid, c_in, 1, 1)),
              (f'backbone.extra.{k + 1}.2', (out, mid, 3, 3))]
  for i, (channels, boxes) in enumerate(TV_SOURCES):
    convs += [(f'head.classification_head.module_list.{i}', (boxes * num_labels, channels, 3, 3)),
              (f'head.regression_head.module_list.{i}', (boxes * 4, channels, 3, 3))]
  for name, shape in convs:
    expected.update({f'{name}.weight': shape, f'{name}.bias': shape[:1]})
  return expected


def _boxes_to_yx(weight, bias):
  """Reorders a regression head's outputs [A * 4, ...] from (x, y, w, h) to (y, x, h, w)."""
  w = weight.reshape((-1, 4) + weight.shape[1:])[:, TV_TO_YX].reshape(weight.shape)
  return w, bias.reshape(-1, 4)[:, TV_TO_YX].reshape(-1)


def from_torchvision_ssd300(state) -> dict:
  """torchvision's whole `ssd300_vgg16` detector state dict -> SSD params (arch ssd300)."""
  num_labels = torchvision_ssd300_num_classes(state)
  state_dicts.check(state, _torchvision_expected(num_labels), "torchvision 'ssd300_vgg16'")
  def conv(name):
    return {'conv': conv_params(state[f'{name}.weight'], state[f'{name}.bias'])}

  base = _base(state, 'backbone.features.', VGG_INDICES[:10], VGG_CONVS[:10])
  for name, j in zip(VGG_CONVS[10:], (1, 3, 5)):
    base[name] = conv(f'backbone.extra.0.{j}')
  base['conv6'] = conv('backbone.extra.0.7.1')
  base['conv7'] = conv('backbone.extra.0.7.3')
  base['conv4_3_norm'] = {'scale': np.asarray(state['backbone.scale_weight'], np.float32)}
  params = {'vgg16': base}
  for k, (name, *_) in enumerate(TV_EXTRAS):
    params[f'{name}_1'] = conv(f'backbone.extra.{k + 1}.0')
    params[f'{name}_2'] = conv(f'backbone.extra.{k + 1}.2')
  for i in range(len(TV_SOURCES)):
    cls = f'head.classification_head.module_list.{i}'
    params[f'conf_{i}'] = conv_params(state[f'{cls}.weight'], state[f'{cls}.bias'])
    reg = f'head.regression_head.module_list.{i}'
    params[f'loc_{i}'] = conv_params(*_boxes_to_yx(state[f'{reg}.weight'], state[f'{reg}.bias']))
  return params


def torchvision_ssd300_config(config, num_labels: int):
  """A copy of `config` (configs/torchvision_ssd300.py) for a detector of `num_labels` labels
  (background included); another label count than the config's gets names 'class_1' ... ."""
  config = config.copy_and_resolve_references()
  if num_labels != len(config.input.class_names) + 1:
    config.input.class_names = tuple(f'class_{i}' for i in range(1, num_labels))
    config.input.category_ids = None  # Unknown: the labels are those of its data set.
  return config


# --- Writing ---------------------------------------------------------------------------------


def _check_output(output: str) -> None:
  if not output:
    raise errors.UserError('--output is required: the folder to create.')
  if os.path.lexists(output):
    raise errors.UserError(f'--output={output} exists; give a new folder (nothing was '
                           'written).')
  parent = os.path.dirname(os.path.abspath(output))
  if not os.path.isdir(parent):
    raise errors.UserError(f'--output={output}: the folder {parent} does not exist.')


def save_params(directory: str, params, meta: dict) -> None:
  """A params-only checkpoint (step 0) in <directory>/checkpoints, for config.init_from."""
  manager = ocp.CheckpointManager(os.path.join(directory, 'checkpoints'),
                                  options=ocp.CheckpointManagerOptions(create=True),
                                  item_names=(checkpoints.STATE, checkpoints.META))
  manager.save(0, args=ocp.args.Composite(**{
      checkpoints.STATE: ocp.args.StandardSave({'params': params}),
      checkpoints.META: ocp.args.JsonSave(meta)}))
  manager.wait_until_finished()
  manager.close()


def save_workdir(directory: str, config, params) -> None:
  """A complete workdir: a step-0 train state with `params` for `config`, and config.json.

  The params must have exactly the model's paths and shapes (else ValueError naming them).
  """
  from ssd_jax import models  # pylint: disable=g-import-not-at-top
  from ssd_jax import train  # pylint: disable=g-import-not-at-top  # imports TensorFlow
  priors = models.default_boxes(config)
  model = models.create_model(config.model, priors.boxes_per_cell, len(config.input.class_names))
  size = config.model.input_size
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)))
  want = traverse_util.flatten_dict(shapes['params'], sep='/')
  got = traverse_util.flatten_dict(params, sep='/')
  diffs = sorted(f'{k}: {tuple(got[k].shape) if k in got else "missing"} vs the model\'s '
                 f'{tuple(want[k].shape) if k in want else "none"}'
                 for k in {**want, **got}
                 if k not in got or k not in want or got[k].shape != want[k].shape)
  if diffs or shapes.get('batch_stats'):
    raise ValueError(f'Converted parameters do not fit the model: {"; ".join(diffs[:5])}')
  # The state train.create_train_state makes, without running the model's initializers.
  state = train.TrainState.create(apply_fn=model.apply, params=jax.tree.map(jnp.asarray, params),
                                  tx=train.create_optimizer(config), batch_stats={})
  state = state.replace(step=jnp.asarray(0, jnp.int32))
  os.makedirs(directory, exist_ok=True)  # (write_folder_atomically made it)
  manager = checkpoints.create_manager(directory, config)
  checkpoints.save(manager, 0, state, checkpoints.model_signature(config, priors))
  manager.wait_until_finished()
  manager.close()
  run_files.write_config(directory, config, None)


def convert(source: str, input_path: str, output: str, config=None) -> None:
  """Reads `input_path` as `source` and writes the checkpoint folder `output`.

  `config` (torchvision-ssd300 only, and needed there) is the config of the workdir it
  writes: configs/torchvision_ssd300.py reproduces torchvision's processing.
  """
  if source not in SOURCES:
    raise errors.UserError(f'unknown SOURCE {source!r}; expected one of {sorted(SOURCES)}.')
  if not input_path:
    raise errors.UserError('--input is required: the state dict file.')
  if source == 'torchvision-ssd300' and config is None:
    raise errors.UserError('torchvision-ssd300 needs --config, the config of the workdir it '
                           'writes: --config=configs/torchvision_ssd300.py.')
  if source != 'torchvision-ssd300' and config is not None:
    raise errors.UserError(f'{source} writes weights without a config; --config is for '
                           'torchvision-ssd300 only.')
  file_io.check_not_inputs([('--output', output, ('*',))], [('--input', input_path)])
  _check_output(output)
  state = state_dicts.load(input_path)
  try:
    params = SOURCES[source](state)
  except errors.UserError as e:
    raise errors.UserError(f'--input={input_path}: {e}') from None
  if source == 'torchvision-ssd300':
    config = torchvision_ssd300_config(config, torchvision_ssd300_num_classes(state))
    file_io.write_folder_atomically(output, lambda tmp: save_workdir(tmp, config, params))
  else:
    meta = {'source': source, 'input': os.path.abspath(input_path), 'parts': ['base']}
    file_io.write_folder_atomically(output, lambda tmp: save_params(tmp, params, meta))
  count = len(jax.tree.leaves(params))
  print(f'Converted {count} arrays from {input_path} ({source}) into {output}.', flush=True)


SOURCES = {'vgg16': from_vgg16, 'vgg16-reducedfc': from_vgg16_reducedfc,
           'torchvision-ssd300': from_torchvision_ssd300}


def main(argv):
  quiet.libraries()
  if len(argv) != 2:
    raise app.UsageError(f'Give one SOURCE ({", ".join(SOURCES)}); got {argv[1:]}.')
  quiet.import_tensorflow()
  def run():
    config = None if FLAGS.config is None else config_keys.from_command_line(FLAGS.config)
    convert(argv[1], FLAGS.input, FLAGS.output, config)
  errors.run_command(PROG, run)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
