"""Every config declares every key the code reads; configs add no keys of their own."""

import glob
import importlib
import os
import re

from absl import flags
import ml_collections
from ml_collections import config_flags
import pytest

from configs import default
from ssd_jax import config_keys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                 if not p.endswith('__init__.py'))
# Attributes of a ConfigDict (or of another object named `config`) that are not keys.
NOT_KEYS = {'keys', 'items', 'update', 'to_json_best_effort', 'copy_and_resolve_references',
            'to_dict', 'lock', 'unlock', 'get_ref', 'set_visible_devices', 'json', 'name'}


def code_key_paths() -> set[str]:
  """Dotted `config.<a>.<b>...` chains read by the library and the experiments.

  Follows one level of aliasing within a file: after `aug = config.input.augment`,
  `aug.flip` reads `input.augment.flip`.
  """
  chains = set()
  for path in glob.glob(os.path.join(REPO, 'ssd_jax', '**', '*.py'), recursive=True) + \
      glob.glob(os.path.join(REPO, 'experiments', '*.py')):
    with open(path) as f:
      text = f.read()
    chains |= {c[1:] for c in re.findall(r'(?<!\.)\bconfig((?:\.[a-z_][a-z_0-9]*)+)', text)}
    for alias, target in re.findall(r'\b([a-z_]+) = config((?:\.[a-z_]+)+)\s*$', text, re.M):
      chains |= {target[1:] + c for c in re.findall(rf'\b{alias}((?:\.[a-z_][a-z_0-9]*)+)',
                                                    text)}
  return chains


def test_the_scan_finds_the_keys_it_should():
  paths = code_key_paths()
  assert {'model.input_size', 'anchors.steps', 'optimizer.momentum', 'input.shapes_num_train',
          'input.augment.photometric', 'loss.iou_threshold', 'eval.nms_iou'} <= paths


@pytest.mark.parametrize('name', CONFIGS)
def test_every_key_the_code_reads_exists(name):
  config = importlib.import_module(f'configs.{name}').get_config()
  missing = []
  for chain in sorted(code_key_paths()):
    node = config
    for part in chain.split('.'):
      if not isinstance(node, ml_collections.ConfigDict) or part in NOT_KEYS:
        break
      if part not in node:
        missing.append(chain)
        break
      node = node[part]
  assert not missing, f'configs/{name}.py lacks keys the code reads: {missing}'


@pytest.mark.parametrize('name', CONFIGS)
def test_configs_declare_no_keys_beyond_the_default(name):
  config = importlib.import_module(f'configs.{name}').get_config()
  extra = set(config_keys.key_paths(config)) - set(config_keys.key_paths(default.get_config()))
  assert not extra, f'configs/{name}.py adds keys that configs/default.py does not declare: {extra}'


def test_code_reads_config_keys_without_defaults_of_its_own():
  offenders = []
  for path in glob.glob(os.path.join(REPO, 'ssd_jax', '**', '*.py'), recursive=True):
    with open(path) as f:
      for i, line in enumerate(f, 1):
        if re.search(r'\bconfig(\.[a-z_]+)*\.get\(', line):
          offenders.append(f'{os.path.relpath(path, REPO)}:{i}')
  assert not offenders, offenders


def test_unknown_key_names_the_path_and_the_closest_key():
  config = default.get_config()
  assert config_keys.unknown_key(config, 'model.width') is None
  assert config_keys.unknown_key(config, 'input.augment.flip') is None
  assert config_keys.unknown_key(config, 'model.widht') == (
      '--config.model.widht: no such config key; did you mean --config.model.width?')
  assert config_keys.unknown_key(config, 'modle.width').endswith('did you mean --config.model.width?')
  assert config_keys.unknown_key(config, 'zzzzzz') == '--config.zzzzzz: no such config key'


def test_none_on_the_command_line_is_none_for_tuple_keys():
  argv = ['prog', f'--config={os.path.join(REPO, "configs", "shapes.py")}',
          '--config.anchors.min_sizes=None', '--config.eval.scales=None',
          '--config.anchors.aspect_ratios=((2,),)']
  flag_values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file('config', flag_values=flag_values, lock_config=True,
                                           sys_argv=argv)
  flag_values(argv)
  assert holder.value.anchors.min_sizes == (None,)  # What ml_collections makes of it.
  config = config_keys.from_command_line(holder.value)
  assert config.anchors.min_sizes is None
  assert config.eval.scales is None
  assert config.anchors.aspect_ratios == ((2,),)
  assert config.anchors.max_sizes == (22, 42, 70, 99, 127, 155)  # Not on the command line.
