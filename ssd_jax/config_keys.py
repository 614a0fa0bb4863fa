"""Config key paths: what exists, and the closest existing key to a mistyped one; settings
that cannot mean anything (`check_settings`)."""

import difflib

import ml_collections

from ssd_jax import errors


def key_paths(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """Every dotted key path of a ConfigDict, groups included ('model', 'model.width', ...)."""
  paths = []
  for key, value in config.items():
    path = prefix + key
    paths.append(path)
    if hasattr(value, 'items'):
      paths += key_paths(value, path + '.')
  return paths


def unknown_key(config: ml_collections.ConfigDict, path: str,
                prefix: str = '--config.') -> str | None:
  """A one-line message if `path` is not a key of `config`, with the closest existing key.

  Keys are written as `<prefix><path>` (the command-line form by default).
  """
  node = config
  for part in path.split('.'):
    if not hasattr(node, 'items') or part not in node:
      known = key_paths(config)
      close = difflib.get_close_matches(path, known, n=1, cutoff=0.5)
      hint = f'; did you mean {prefix}{close[0]}?' if close else ''
      return f'{prefix}{path}: no such config key{hint}'
    node = node[part]
  return None


def from_command_line(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config of a `--config` flag, with `--config.<key>=None` on a tuple key read as None.

  ml_collections makes every override of a tuple key a tuple, so `=None` arrives as `(None,)`,
  which no key means (`anchors.min_sizes=None` selects the scale rule, `eval.scales=None`
  evaluates at `model.input_size` alone). Every command calls this on its `--config`.
  """
  for key, value in config.items():
    if hasattr(value, 'items'):
      from_command_line(value)
    elif isinstance(value, tuple) and value == (None,):
      config[key] = None
  return config


def _at_least_one(config: ml_collections.ConfigDict, path: str, why: str) -> None:
  node = config
  for part in path.split('.'):
    node = node[part]
  if not isinstance(node, int) or isinstance(node, bool) or node < 1:
    raise errors.UserError(f'{path}={node!r}: it must be a whole number of at least 1 ({why}).')


def check_fraction(value, name: str) -> None:
  """UserError unless `value` is a number in [0, 1] (a score or IoU threshold; not NaN)."""
  if (not isinstance(value, (int, float)) or isinstance(value, bool)
      or not 0.0 <= value <= 1.0):  # NaN fails both comparisons.
    raise errors.UserError(f'{name}={value!r}: it must be a number from 0 to 1 (scores and '
                           'IoUs lie in [0, 1]; a threshold outside keeps nothing or '
                           'everything).')


def check_settings(config: ml_collections.ConfigDict, training: bool) -> None:
  """One-line UserError for a setting that cannot mean anything, before any work.

  Counts of steps and images must be at least 1: no value means "never". A run always
  evaluates and saves at its last step, so `eval.every_steps` or `checkpoint_every_steps` at
  or above `num_train_steps` means "only at the end" (docs/training.md). Score and IoU
  thresholds lie in [0, 1].
  """
  if training:
    _at_least_one(config, 'num_train_steps', 'a run trains at least one step')
    _at_least_one(config, 'input.batch_size', 'images per training step')
    _at_least_one(config, 'eval.every_steps', 'steps between evaluations; a value at or '
                  'above num_train_steps evaluates only at the end')
    _at_least_one(config, 'checkpoint_every_steps', 'steps between saves; a value at or '
                  'above num_train_steps saves only at the end')
    _at_least_one(config, 'log_every_steps', 'steps between progress lines')
  _at_least_one(config, 'input.eval_batch_size', 'images per evaluation step')
  check_fraction(config.eval.score_threshold, 'eval.score_threshold')
  check_fraction(config.eval.nms_iou, 'eval.nms_iou')
