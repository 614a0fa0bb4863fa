"""Starting a run from pretrained weights: `config.init_from` and `config.init_parts`.

The model's parameters fall into four parts, by path:
  base        vgg16/conv1_1 .. vgg16/conv7 (what an ImageNet VGG16 conversion holds),
  extras      conv8_* .. conv12_* and the L2Norm scales (vgg16/conv4_3_norm, vgg16/conv3_norm),
  box_head    loc_*,
  class_head  conf_*.
`init_parts` names which parts are taken ('base', 'base+extras', 'all_but_class_head', 'all').
Within them every array whose path and shape match the checkpoint is loaded. A class head of
another class count (COCO's 91 scores into VOC's 21) is re-initialised. Every array that keeps
its fresh initialisation is reported with the reason, so a partial load is never silent.
"""

import collections
import os

from flax import traverse_util
import jax
import jax.numpy as jnp

from ssd_jax import checkpoints
from ssd_jax import errors
from ssd_jax import report
from ssd_jax import state_dicts

PARTS = ('base', 'extras', 'box_head', 'class_head')
INIT_PARTS = {'base': PARTS[:1], 'base+extras': PARTS[:2], 'all_but_class_head': PARTS[:3],
              'all': PARTS}


def part_of(path: str) -> str:
  """The part ('base', 'extras', 'box_head' or 'class_head') of a '/'-joined param path."""
  top = path.split('/')[0]
  if top == 'vgg16':  # The L2Norm scales are SSD's, not in an ImageNet VGG16.
    return 'extras' if path.split('/')[1].endswith('_norm') else 'base'
  if top.startswith('loc_'):
    return 'box_head'
  if top.startswith('conf_'):
    return 'class_head'
  return 'extras'


def load(path: str):
  """Parameters of a workdir, its `checkpoints/` folder or one step folder (the averaged ones
  of a run with optimizer.ema_decay: what it evaluated)."""
  if os.path.isdir(os.path.join(path, 'checkpoints')):
    path = os.path.join(path, 'checkpoints')
  return checkpoints.load_params(path)


def select(params, pretrained, init_parts: str, where: str = 'the checkpoint'):
  """Takes the `init_parts` of `pretrained` into `params` (nested dicts of arrays).

  Returns (params, loaded paths, [(re-initialised path, reason)]). Raises UserError for an
  unknown `init_parts`, for a loaded array that is not floating point or holds NaN/inf
  (`state_dicts.value_problem`, naming it), for arrays of the chosen parts missing from the checkpoint (unless
  'all'), and for shape mismatches outside the class head (another width or architecture).
  """
  if init_parts not in INIT_PARTS:
    raise errors.UserError(f'config.init_parts={init_parts!r}; expected one of '
                           f'{sorted(INIT_PARTS)}.')
  parts = INIT_PARTS[init_parts]
  flat = traverse_util.flatten_dict(params, sep='/')
  given = traverse_util.flatten_dict(pretrained, sep='/')
  merged, loaded, fresh, missing, mismatched = dict(flat), [], [], [], []
  for path, value in flat.items():
    part = part_of(path)
    if part not in parts:
      fresh.append((path, f'config.init_parts={init_parts!r} does not take the {part}'))
    elif path not in given:
      if init_parts == 'all':
        fresh.append((path, f'not in {where}'))
      else:
        missing.append(path)
    elif tuple(given[path].shape) != tuple(value.shape):
      if part == 'class_head':
        boxes = flat[path.split('/')[0].replace('conf_', 'loc_') + '/bias'].shape[0] // 4
        fresh.append((path, f'another class count ({given[path].shape[-1] // boxes} scores '
                            f'per box in {where}, {value.shape[-1] // boxes} in the model)'))
      else:
        mismatched.append(f'{path} {tuple(given[path].shape)} in {where}, '
                          f'{tuple(value.shape)} in the model')
    else:
      merged[path] = jnp.asarray(given[path], value.dtype)
      loaded.append(path)
  if missing:
    raise errors.UserError(
        f'config.init_parts={init_parts!r} takes the {"+".join(parts)} but {where} lacks '
        f'{len(missing)} of their arrays ({", ".join(sorted(missing)[:6])}...); another '
        'model.vgg_convs than it was made with? Choose fewer parts (e.g. '
        "config.init_parts='base') or 'all' to load what is there.")
  if mismatched:
    raise errors.UserError(f'config.init_from: {len(mismatched)} arrays differ in shape from '
                           f'the model (another model.width, arch, vgg_convs, vgg_channels '
                           f'or fc_channels?): '
                           f'{"; ".join(mismatched[:4])}.')
  if not loaded:
    raise errors.UserError(f'config.init_from: no array of {where} fits this model '
                           f'(config.init_parts={init_parts!r}).')
  try:
    state_dicts.check_values({path: given[path] for path in loaded})
  except errors.UserError as e:
    raise errors.UserError(f'config.init_from={where}: {e}') from None
  return traverse_util.unflatten_dict(merged, sep='/'), loaded, fresh


def describe(loaded, fresh, where: str) -> list[str]:
  """Report lines: how many arrays were loaded, then each reason with the layers it hit."""
  lines = [f'Initialized {len(loaded)} arrays from {where}.']
  by_reason = collections.defaultdict(list)
  for path, reason in fresh:
    layer = path.rsplit('/', 1)[0].removesuffix('/conv')  # vgg16/conv4_3, not vgg164_3
    if layer not in by_reason[reason]:
      by_reason[reason].append(layer)
  for reason, layers in by_reason.items():
    count = sum(1 for _, r in fresh if r == reason)
    lines.append(f'  re-initialised {count} arrays ({", ".join(layers)}): {reason}.')
  return lines


def initialize(params, config):
  """`params` with `config.init_from` loaded as `config.init_parts` says; prints what."""
  where = config.init_from
  given = load(where)
  params, loaded, fresh = select(jax.device_get(params), given, config.init_parts, where)
  lines = describe(loaded, fresh, where)
  flat = traverse_util.flatten_dict(params, sep='/')
  unused = sorted({p.rsplit('/', 1)[0].removesuffix('/conv')
                   for p in traverse_util.flatten_dict(given, sep='/') if p not in flat})
  if unused:  # E.g. VGG16's conv3_3 under a model.vgg_convs with two convs in block 3.
    lines.append(f'  not used: the arrays of {", ".join(unused)}: this model has no such layer.')
  for line in lines:
    report.note(line)
  return params
