"""Reading json inputs and writing outputs whole or not at all, with one-line errors.

- `read_json(path, what)`: a json file (UTF-8, or UTF-16/32 as json allows); raises
  FileNotFoundError or `errors.UserError` naming the path (and the byte offset of bad text).
- `is_number(value)`: an int or float as json gives them; not a string, not a boolean.
- `check_writable(path, flag, folder)`: before a long computation, whether its output can be
  written there.
- `check_not_inputs(outputs, inputs)`: before any work, that no output would write over one
  of the command's inputs (real paths: symlinks count).
- `write_atomically(path, write)`, `write_text(path, text)`: write through a temporary file in
  the same folder and `os.replace`, so a full disk or another failure leaves no partial file
  behind (and raise a UserError naming the path).
"""

import contextlib
import errno
import fnmatch
import glob
import json
import os
import shutil
import tempfile
from typing import Any, BinaryIO, Callable

import numpy as np

from ssd_jax import errors


def read_json(path: str, what: str) -> Any:
  """The parsed contents of the json file `path`, a `what` ('detections file') for messages."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except FileNotFoundError:
    raise FileNotFoundError(f'{what} not found: {path}') from None
  except OSError as e:
    raise errors.UserError(f'cannot read the {what} {path}: {e.strerror}.') from e
  try:
    return json.loads(data)  # Bytes: json detects UTF-8, UTF-16 and UTF-32.
  except UnicodeDecodeError as e:
    raise errors.UserError(f'{path}: not UTF-8 text ({e.encoding} cannot decode '
                           f'{e.object[e.start:e.start + 1]!r} at byte {e.start}: {e.reason}).'
                           ) from None
  except json.JSONDecodeError as e:
    raise errors.UserError(f'{path}: not valid JSON ({e}).') from None
  except RecursionError:
    raise errors.UserError(f'{path}: not usable JSON (lists or objects nested too deeply for '
                           'the parser).') from None


def is_number(value) -> bool:
  """True for an int or float (numpy's too); False for bool, str and anything else."""
  return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def check_writable(path: str, flag: str, folder: bool) -> None:
  """Raises UserError unless a file (or with `folder`, files in a folder) can be written at
  `path`. Missing folders on the way are fine (they will be made); the nearest existing one
  must be a folder in which a file can be created (tried for real, so it also holds as root)."""
  path = os.path.abspath(path)
  if folder and os.path.lexists(path) and not os.path.isdir(path):
    raise errors.UserError(f'{flag}={path} is a file; it must be a folder (or not exist yet).')
  if not folder and os.path.isdir(path):
    raise errors.UserError(f'{flag}={path} is a folder; give a file name.')
  existing = path if folder else os.path.dirname(path)
  while not os.path.lexists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise errors.UserError(f'{flag}={path}: {existing} is not a folder.')
  try:
    fd, tmp = tempfile.mkstemp(dir=existing, prefix='.ssd_jax_write_test.')
    os.close(fd)
    os.remove(tmp)
  except OSError as e:
    raise errors.UserError(f'{flag}={path}: cannot write in {existing} ({e.strerror}).') from e


def _real(path: str) -> str:
  return os.path.realpath(os.path.abspath(path))


def _inside(path: str, folder: str) -> bool:
  """Whether real path `path` lies inside real path `folder` (at any depth, not equal)."""
  return os.path.commonpath([path, folder]) == folder and path != folder


def check_not_inputs(outputs, inputs) -> None:
  """Raises UserError (one line) if an output would write over one of the inputs.

  `outputs`: (flag, path, written) per output; `written` is None for a file, or for a folder
  the glob patterns (relative to it, `*` matching at any depth) of the files written in it.
  `inputs`: (name, path) per input file or folder; `name` says where it came from in the
  message ('--ground_truth', 'image'). Paths are compared real (symlinks resolved), so a link
  to an input counts as that input. An output is refused when it is an input, lies inside an
  input folder, or (a folder) would write a file that is an input (or a link to one).
  """
  for flag, path, written in outputs:
    if not path:
      continue
    out = _real(path)
    for name, in_path in inputs:
      if not in_path:
        continue
      src = _real(in_path)
      same = (f' (both are {src})' if os.path.abspath(path) != os.path.abspath(in_path)
              else '')
      if out == src:
        problem = f'is the input {name}={in_path}{same}'
      elif os.path.isdir(src) and _inside(out, src):
        problem = f'lies inside the input folder {name}={in_path}'
      elif written is not None and (
          (_inside(src, out) and any(fnmatch.fnmatchcase(os.path.relpath(src, out), p)
                                     for p in written))
          or any(_real(f) == src for p in written for f in glob.glob(os.path.join(out, p)))):
        problem = f'would write over the input {name}={in_path}, which lies in it'
      else:
        continue
      raise errors.UserError(f'{flag}={path} {problem}; a command never writes over its '
                             'own inputs: choose another output path.')


def _permission_bits(mode: int = 0o666) -> int:
  """`mode` less the umask: what `open(path, 'w')` (0o666) or `os.mkdir` (0o777) would give
  (mkstemp gives 0o600, mkdtemp 0o700)."""
  umask = os.umask(0o022)
  os.umask(umask)
  return mode & ~umask


def write_atomically(path: str, write: Callable[[BinaryIO], Any]) -> None:
  """Calls `write(f)` on a binary file that becomes `path` only once it is complete.

  Makes the missing folders. Raises UserError naming the path (with the free space when the
  disk is full); the temporary file is removed on any failure.
  """
  folder = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
  except OSError as e:
    raise errors.UserError(f'cannot write {path}: {e.strerror}.') from e
  try:
    with open(fd, 'wb') as f:
      write(f)
    os.chmod(tmp, _permission_bits())
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    if not isinstance(e, OSError):
      raise
    if errors.find_disk_full(e):
      raise errors.disk_full(path) from e
    raise errors.UserError(f'cannot write {path}: {e.strerror}.') from e


def write_text(path: str, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically, as `write_atomically`."""
  write_atomically(path, lambda f: f.write(text.encode()))


def write_folder_atomically(output: str, write: Callable[[str], Any]) -> None:
  """Calls write(tmp) on a new temporary folder next to `output`, then renames it to `output`;
  on any failure the temporary folder is removed and `output` does not appear.

  `output` must not exist. If it appears meanwhile (another command writing the same folder
  finished first), that one is kept and this one raises a UserError: of two concurrent writers
  exactly one succeeds. (A rename replaces an empty folder, so one made by hand in the last
  moment may still be replaced by a complete `output`.)
  """
  parent, name = os.path.split(os.path.abspath(output))
  try:
    tmp = tempfile.mkdtemp(dir=parent, prefix=f'.{name}.tmp-')
    os.chmod(tmp, _permission_bits(0o777))
  except OSError as e:
    raise errors.UserError(f'cannot write {output}: {e.strerror}.') from e
  try:
    write(tmp)
    if os.path.lexists(output):
      raise FileExistsError(errno.EEXIST, 'exists', output)
    os.rename(tmp, output)
  except OSError as e:
    if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
      raise
    raise errors.UserError(f'{output} appeared while this command was writing it (another '
                           'command writing the same folder?); it was left as it is and '
                           'nothing of this command was kept.') from None
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
