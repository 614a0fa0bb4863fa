"""Reading PyTorch state dicts without executing pickle, and checking their keys.

`.safetensors` and `.npz` files are read with numpy alone. `.pth`/`.pt` files are read with
`torch.load(weights_only=True)` when torch is installed (never a requirement of this project);
without torch the error says how to turn the file into `.safetensors` where torch is.
"""

import os
import re
from typing import Mapping

import numpy as np

from ssd_jax import errors

TORCH_SUFFIXES = ('.pth', '.pt', '.bin', '.ckpt')
# Printed when a .pth must be read without torch (docs/weights.md says the same).
TO_SAFETENSORS = (
    'python -c "import sys, torch, safetensors.torch as st; '
    "sd = torch.load(sys.argv[1], map_location='cpu', weights_only=True); "
    "st.save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2])\" "
    'IN.pth OUT.safetensors')


def _torch_load(path: str) -> Mapping:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise errors.UserError(
        f'{path}: reading a PyTorch file needs torch, which is not installed here. Install '
        f'torch, or convert the file where torch is: {TO_SAFETENSORS}, then pass the '
        '.safetensors file.') from None
  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # torch raises many kinds.
    first = re.sub(r'\x1b\[[0-9;]*m', '', errors.one_line(e)).split('. ')[0]
    raise errors.UserError(f'{path}: torch cannot load it as a state dict without unpickling '
                           f'code ({type(e).__name__}: {first}).') from None
  for key in ('state_dict', 'model'):  # Training checkpoints wrap the state dict.
    if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
      state = state[key]
  if not isinstance(state, Mapping):
    raise errors.UserError(f'{path}: holds a {type(state).__name__}, not a state dict.')
  return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
          for k, v in state.items() if hasattr(v, 'numpy')}


def load(path: str) -> dict[str, np.ndarray]:
  """The state dict {name: array} in `path` (.safetensors, .npz, or .pth with torch)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'--input: no such file: {path}')
  if os.path.isdir(path):
    raise errors.UserError(f'--input={path} is a folder; give a weights file.')
  suffix = os.path.splitext(path)[1].lower()
  try:
    if suffix == '.safetensors':
      from safetensors import numpy as st  # pylint: disable=g-import-not-at-top
      return dict(st.load_file(path))
    if suffix == '.npz':
      with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
  except (OSError, ValueError) as e:
    raise errors.UserError(f'{path}: cannot read it as {suffix[1:]} '
                           f'({errors.one_line(e)}).') from None
  except Exception as e:  # pylint: disable=broad-except  # safetensors' own error type.
    raise errors.UserError(f'{path}: cannot read it as {suffix[1:]} '
                           f'({type(e).__name__}: {errors.one_line(e)}).') from None
  if suffix in TORCH_SUFFIXES:
    return _torch_load(path)
  raise errors.UserError(f'{path}: unknown weights format {suffix!r}; expected .safetensors, '
                         f'.npz or {", ".join(TORCH_SUFFIXES)}.')


def _listing(names, limit=8) -> str:
  names = sorted(names)
  more = f' and {len(names) - limit} more' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more


def check(state: Mapping[str, np.ndarray], expected: Mapping[str, tuple], what: str,
          optional: tuple[str, ...] = ()) -> None:
  """Raises UserError unless `state` has exactly the `expected` {name: shape} (plus any of
  `optional`), naming the missing, extra and wrongly shaped arrays."""
  missing = set(expected) - set(state)
  extra = set(state) - set(expected) - set(optional)
  shapes = [f'{k} {tuple(state[k].shape)} (expected {tuple(v)})'
            for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v)]
  if not (missing or extra or shapes):
    check_values({k: state[k] for k in expected}, 'tensor')
    return
  parts = []
  if missing:
    parts.append(f'{len(missing)} missing: {_listing(missing)}')
  if extra:
    parts.append(f'{len(extra)} unexpected: {_listing(extra)}')
  if shapes:
    parts.append(f'{len(shapes)} with another shape: {_listing(shapes, 4)}')
  raise errors.UserError(f'this is not a {what} state dict; ' + '; '.join(parts) + '.')


def value_problem(array) -> str | None:
  """Why `array` cannot be weights: not floating point (a cast would silently turn, say,
  quantized integers into nonsense) or holding NaN/inf; None when it can."""
  array = np.asarray(array)
  if not np.issubdtype(array.dtype, np.floating) and array.dtype.name != 'bfloat16':
    return f'is {array.dtype}, not floating point (weights are not cast from integers)'
  values = array.astype(np.float32, copy=False) if array.dtype.name == 'bfloat16' else array
  bad = int(values.size - np.count_nonzero(np.isfinite(values)))
  if bad:
    nan = int(np.count_nonzero(np.isnan(values)))
    return (f'has {bad} non-finite values of {values.size} ({nan} NaN, {bad - nan} inf); '
            'refusing weights that would make every loss NaN')
  return None


def check_values(arrays: Mapping[str, np.ndarray], kind: str = 'array') -> None:
  """Raises UserError naming the first array of `arrays` (sorted by name) that
  `value_problem` refuses, and how many others it refuses."""
  problems = [(name, p) for name in sorted(arrays)
              for p in [value_problem(arrays[name])] if p is not None]
  if problems:
    name, problem = problems[0]
    more = f' (and {len(problems) - 1} more {kind}s)' if len(problems) > 1 else ''
    raise errors.UserError(f'{kind} {name} {problem}{more}.')
