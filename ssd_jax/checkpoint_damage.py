"""Damaged checkpoint steps: telling damage from other errors, and moving a step aside.

A step is damaged when one of its files cannot be read back, whatever the error a restore
gave: `find_damage` checks the step itself, without reading error messages or file sizes:

1. every JSON file of the step parses (`json_files`: orbax writes its metadata, the `meta`
   item and the eval `metrics` as JSON; its other files are `commit_success.txt` markers,
   `manifest.ocdbt` and the array data under `d/`, see tests/test_checkpoints.py, which pins
   this layout);
2. each item of arrays reads back in full, every array as stored (as numpy, on any devices).

A restore that failed on a step that passes both (a tree or shapes that do not fit, a missing
array) failed for another reason, and its error propagates. A damaged step is moved aside to
`<workdir>/checkpoints_corrupt/<step>` (`move_aside`), never deleted.
"""

import glob
import json
import os

from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

_NOT_JSON = ('commit_success.txt', 'manifest.ocdbt')  # Orbax's commit markers, OCDBT indexes.


def reason(error: BaseException) -> str:
  """The first line of the innermost message in `error`'s chain (the most specific one)."""
  messages = []
  while error is not None:
    messages.append(str(error).strip())
    error = error.__cause__ or error.__context__
  messages = [m for m in messages if m]
  return messages[-1].splitlines()[0][:300] if messages else 'unreadable'


def json_files(step_dir: str) -> list[str]:
  """The files of a step folder that orbax writes as JSON (all but markers and array data)."""
  return [path for path in sorted(glob.glob(os.path.join(step_dir, '**'), recursive=True))
          if os.path.isfile(path) and os.path.basename(path) not in _NOT_JSON and
          os.path.basename(os.path.dirname(path)) != 'd']


def json_damage(step_dir: str) -> tuple[str, str] | None:
  """(path, reason) of the first JSON file of `step_dir` that does not parse, else None."""
  for path in json_files(step_dir):
    try:
      with open(path, 'rb') as f:
        json.load(f)
    except (OSError, ValueError) as e:  # (UnicodeDecodeError is a ValueError.)
      return path, reason(e)
  return None


def find_damage(step_dir: str, array_items=('state',)) -> tuple[str, str] | None:
  """(path, reason) naming what of `step_dir` cannot be read back, or None when all of it can.

  `array_items`: the step's items of arrays (saved with `StandardSave`), read back in full
  as numpy arrays, which fit any device topology (a restore without a target tree would
  fail on another number of devices, which is not damage).
  """
  damaged = json_damage(step_dir)
  if damaged is not None:
    return damaged
  for name in array_items:
    item_dir = epath.Path(step_dir) / name
    handler = ocp.PyTreeCheckpointHandler()
    try:
      tree = handler.metadata(item_dir).tree
      as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
      handler.restore(item_dir, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
    except Exception as e:  # pylint: disable=broad-except  # Any failure to read is damage.
      return str(item_dir), reason(e)
    finally:
      handler.close()
  return None


def move_aside(directory: str, step: int) -> str:
  """Moves a step folder to `<workdir>/checkpoints_corrupt/<step>` (never deletes it).

  Process 0 moves it; the others wait for it. Returns the new path.
  """
  parent = os.path.join(os.path.dirname(directory), 'checkpoints_corrupt')
  target = os.path.join(parent, str(step))
  if jax.process_index() == 0:
    os.makedirs(parent, exist_ok=True)
    n = 1
    while os.path.exists(target):
      target, n = os.path.join(parent, f'{step}.{n}'), n + 1
    os.rename(os.path.join(directory, str(step)), target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'ssd_jax:checkpoint_moved:{step}')
  return target
