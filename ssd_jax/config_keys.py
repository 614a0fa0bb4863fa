"""Config key paths: what exists, and the closest existing key to a mistyped one."""

import difflib

import ml_collections


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
