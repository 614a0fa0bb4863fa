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
