"""What a sweep is: a named sweep of experiments/sweeps.py, a Python file defining VARIANTS,
or the values of one config key (--vary); each a Sweep of (name, overrides) variants, checked
(names that are plain folder names, dicts of dotted keys, no num_train_steps) before anything
runs (docs/sweeps.md)."""

import ast
import dataclasses
import difflib
import math
import os
import re
import runpy

import ml_collections

from experiments import sweeps
from ssd_jax import config_keys
from ssd_jax import errors


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A sweep: its name (recorded in sweep.json) and its variants [(name, overrides)]."""
  name: str
  variants: tuple


def get_sweep(name: str) -> Sweep:
  """The named sweep of experiments/sweeps.py."""
  if name not in sweeps.SWEEPS:
    close = difflib.get_close_matches(name, sweeps.SWEEPS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    raise errors.UserError(f"Unknown sweep '{name}'; experiments/sweeps.py defines "
                           f"{', '.join(sorted(sweeps.SWEEPS))}; or give a file, "
                           f"--sweep=path/to/my_sweep.py.{hint}")
  return Sweep(name, _checked_variants(sweeps.SWEEPS[name], f"sweep '{name}'"))


def load_sweep_file(path: str) -> Sweep:
  """The sweep a Python file defines as `VARIANTS = ((name, {dotted.key: value}), ...)` (or a
  dict {name: overrides}).

  Named after the file (`my_sweep` for path/to/my_sweep.py). UserError if the file does not
  load or defines no variants.
  """
  if not os.path.isfile(path):
    raise errors.UserError(f'--sweep={path}: no such file (a sweep name is one of '
                           f"{', '.join(sorted(sweeps.SWEEPS))}).")
  try:
    namespace = runpy.run_path(path)
  except Exception as e:  # pylint: disable=broad-except  # any error of the user's file
    raise errors.UserError(f'{path}: the sweep file does not load: {type(e).__name__}: '
                           f'{errors.one_line(e)}') from None
  variants = namespace.get('VARIANTS')
  if not variants:
    raise errors.UserError(f'{path} defines no variants: expected VARIANTS = ((name, '
                           '{dotted.key: value, ...}), ...) (docs/sweeps.md).')
  name = os.path.splitext(os.path.basename(path))[0]
  return Sweep(name, _checked_variants(variants, path))


def _checked_variants(variants, where: str) -> tuple:
  """`variants` (pairs, or a dict name -> overrides) as a tuple of (name, overrides), each name
  a unique, plain folder name."""
  if isinstance(variants, dict):
    variants = variants.items()
  try:
    variants = tuple((name, overrides) for name, overrides in variants)
  except (TypeError, ValueError):
    raise errors.UserError(f'{where}: variants must be (name, {{dotted.key: value}}) pairs.'
                           ) from None
  seen = set()
  for name, overrides in variants:
    if (not isinstance(name, str) or not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.=+-]*', name)
        or name.startswith('seed_') or name.startswith('results')):
      raise errors.UserError(f'{where}: variant name {name!r} is not a plain folder name '
                             '(letters, digits, _ . = + -; not seed_* or results*).')
    if name in seen:
      raise errors.UserError(f"{where}: variant '{name}' is defined twice.")
    seen.add(name)
    if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
      raise errors.UserError(f"{where}: variant '{name}' overrides must be a dict of dotted "
                             f'config keys, not {overrides!r}.')
    if 'num_train_steps' in overrides:
      raise errors.UserError(f"{where}: variant '{name}' sets num_train_steps; every variant "
                             'of a sweep trains the same steps (--steps).')
  return variants


def _split_top_level(text: str) -> list[str]:
  """Splits at the commas outside brackets and quotes: '(1, 2),(3,)' -> ['(1, 2)', '(3,)']."""
  parts, depth, quote, current = [], 0, None, ''
  for ch in text:
    if quote:
      quote = None if ch == quote else quote
    elif ch in '\'"':
      quote = ch
    elif ch in '([{':
      depth += 1
    elif ch in ')]}':
      depth -= 1
    elif ch == ',' and depth == 0:
      parts.append(current)
      current = ''
      continue
    current += ch
  return parts + [current]


def _value(text: str):
  """A Python literal ('(1, 2)', '0.5', 'None', 'True'), else the text itself (a string)."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _vary_name(leaf: str, value) -> str:
  """A folder name for one value: 'min_sizes_10_20' for min_sizes=(10, 20)."""
  text = re.sub(r'[^A-Za-z0-9.+-]+', '_', str(value)).strip('_')
  return f'{leaf}_{text}' if text else leaf


def parse_vary(text: str, base: ml_collections.ConfigDict) -> Sweep:
  """The one-key sweep of `--vary=<key>=<v1>,<v2>,...` (values are Python literals; a tuple
  in parentheses is one value). Named 'vary <key>'."""
  key, sep, values = text.partition('=')
  key = key.strip()
  if not sep or not key or not values.strip():
    raise errors.UserError(f'--vary={text}: expected --vary=<config key>=<value>,<value>,... '
                           "e.g. --vary=anchors.extra_scale=True,False.")
  message = config_keys.unknown_key(base, key, prefix='')
  if message:
    raise errors.UserError(f'--vary: {message}')
  parsed = [_value(v.strip()) for v in _split_top_level(values)]
  if any(isinstance(v, str) and not v for v in parsed):
    raise errors.UserError(f'--vary={text}: an empty value.')
  leaf = key.rsplit('.', 1)[-1]
  names = [_vary_name(leaf, v) for v in parsed]
  variants = []
  for i, (name, value) in enumerate(zip(names, parsed)):
    if any(plain(value) == plain(v) for v in parsed[:i]):
      raise errors.UserError(f'--vary={text}: the value {value!r} is given twice.')
    if names.count(name) > 1 or len(name) > 60:
      name = f'{leaf}_{i}'
    variants.append((name, {key: value}))
  return Sweep(f'vary {key}', _checked_variants(variants, '--vary'))


def resolve_sweep(sweep: str | None, vary: str | None, base) -> Sweep:
  """The sweep of --sweep (a name or a .py file) or --vary (exactly one of them)."""
  if (sweep is None) == (vary is None):
    raise errors.UserError('give one of --sweep=<name or file.py> and --vary=<key>=<values>.')
  if vary is not None:
    return parse_vary(vary, base)
  if sweep.endswith('.py') or os.sep in sweep:
    return load_sweep_file(sweep)
  return get_sweep(sweep)


def plain(value):
  """JSON-comparable form: tuples as lists, nan as None."""
  if isinstance(value, float) and math.isnan(value):
    return None
  if isinstance(value, dict):
    return {str(k): plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [plain(v) for v in value]
  return value
