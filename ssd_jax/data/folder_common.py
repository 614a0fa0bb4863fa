"""Pieces shared by the local-folder tfds builders (`voc_folder`, `coco_folder`)."""

import collections
import dataclasses
import hashlib
import io
import os

from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from ssd_jax import errors
from ssd_jax import image_files
from ssd_jax import report as report_lib
from ssd_jax.data import problems
from ssd_jax import quiet  # pylint: disable=unused-import  (installs its log filter)


class DataError(errors.UserError):
  """Bad input that stops preparation (policy 'raise', or nothing usable left)."""


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
  """A local folder to read. `on_error`: 'skip' (count and log) or 'raise'."""
  folder: str = ''
  class_names: tuple = ()
  category_ids: tuple = ()  # COCO only: label i (1-based) has category id category_ids[i-1].
  splits: tuple = ()
  on_error: str = 'skip'


def _hash_stat(h, path, stat):
  h.update(f'{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())


def _hash_listing(h, path):
  """Hashes name, size and modification time of `path` (a file) or of each entry of `path`
  (a folder, not recursive): one stat per file, no file is read."""
  try:
    stat = os.stat(path)
  except OSError:
    h.update(f'{path}\0missing\n'.encode())
    return
  if not os.path.isdir(path):
    _hash_stat(h, path, stat)
    return
  with os.scandir(path) as entries:
    for entry in sorted(entries, key=lambda e: e.name):
      try:
        _hash_stat(h, entry.name, entry.stat())
      except OSError:  # Removed while listing, or a dangling link.
        h.update(f'{entry.name}\0missing\n'.encode())


def config_name(folder, class_names, splits, on_error, watched=()):
  """A name unique to what the prepared data depends on.

  That is: the absolute folder path, class list, splits, `on_error`, and name, size and
  modification time of every file in `watched` (files, or folders whose entries count:
  annotations and images). Editing, adding or replacing any of them gives a new name, so
  tfds prepares the data again. Costs one stat per file (no file is read).
  """
  h = hashlib.sha1()
  h.update(os.path.abspath(folder).encode())
  h.update(repr(tuple(class_names)).encode())
  h.update(repr(tuple(splits)).encode())
  h.update(repr(on_error).encode())
  for path in watched:
    _hash_listing(h, path)
  return 'f' + h.hexdigest()[:12]


def features(class_names):
  return tfds.features.FeaturesDict({
      'image': tfds.features.Image(encoding_format='jpeg'),
      'image/filename': tfds.features.Text(),
      'image/id': np.int64,
      'objects': tfds.features.Sequence({
          'bbox': tfds.features.BBoxFeature(),
          'label': tfds.features.ClassLabel(names=list(class_names)),
          'is_difficult': np.bool_,
          'is_crowd': np.bool_,
      }),
  })


class FolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """What `VocFolder` and `CocoFolder` share: version, features, per-split problem counts.

  Subclasses set `FORMAT` (for the description) and `code_path` (their own file: tfds' own
  lookup of it needs importlib_resources).
  """

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'First version.',
                   '1.1.0': 'Pixels as displayed (EXIF orientation, 16-bit scaled to 8 bits); '
                            'image paths stay inside the folder.'}
  FORMAT = ''

  def __init__(self, *, config: FolderConfig, **kwargs):
    super().__init__(config=config, **kwargs)
    self.problem_counts = {}

  def _info(self):
    # metadata['summary'][split]: {'images', 'empty', 'problems'}, saved with the records
    # (metadata.json) so that a cached run reports the same summary.
    return self.dataset_info_from_configs(
        description=f'{self.FORMAT}-format folder {self.builder_config.folder}',
        features=features(self.builder_config.class_names),
        metadata=tfds.core.MetadataDict())

  def _new_report(self, split) -> 'Problems':
    """A problem report for generating `split`; `problem_counts[split]` shows its counts."""
    report = Problems(split, self.builder_config.on_error)
    self.problem_counts[split] = report.counts
    return report

  def _finish_split(self, split, num_images, num_empty, report):
    """Stores the split's summary; raises DataError if nothing usable was written."""
    counts = dict(sorted(report.counts.items()))
    self.info.metadata.setdefault('summary', {})[split] = {
        'images': num_images, 'empty': num_empty, 'problems': counts}
    if num_images == 0:
      raise DataError(f'{self.name}: split {split!r} is empty (no usable image; problems: '
                      f'{counts or "none"})')

  def summary_lines(self):
    """One line per split: images written, images without objects, problem counts."""
    summary = (self.info.metadata or {}).get('summary', {})
    lines = []
    for split in self.builder_config.splits:
      if split not in summary:
        continue
      s = summary[split]
      found = ', '.join(f'{k}: {v}' for k, v in s['problems'].items()) or 'none'
      lines.append(f'{self.name} {self.builder_config.folder} split {split!r}: '
                   f'{s["images"]} images written, {s["empty"]} without objects; '
                   f'data problems: {found}')
    return lines

  def download_and_prepare(self, *args, **kwargs):
    """Prepares the records if needed, then prints each split's summary (cached or not)."""
    super().download_and_prepare(*args, **kwargs)
    for line in self.summary_lines():
      report_lib.note(line)


class Problems:
  """Per-split problem counts for a folder builder, applying the on_error policy."""

  def __init__(self, split, on_error):
    if on_error not in ('skip', 'raise'):
      raise errors.UserError(f"config.input.on_error must be 'skip' or 'raise', got "
                             f'{on_error!r}.')
    self.split = split
    self.on_error = on_error
    self.counts = collections.Counter()

  def __call__(self, kind, message, fatal_if_raise=True):
    self.counts[kind] += 1
    if self.on_error == 'raise' and fatal_if_raise:
      raise DataError(f'[{kind}] {message}')
    problems.record(kind, message)


def inside(path, folder) -> bool:
  """Whether `path` lies inside `folder` once both are resolved (symlinks followed): a
  `../` or absolute path, or a link to a file elsewhere, is not inside."""
  real, base = os.path.realpath(path), os.path.realpath(folder)
  return real != base and os.path.commonpath([real, base]) == base


def check_inside(path, folder, where, report) -> bool:
  """True if `path` is inside `folder`; else reports 'path_outside_folder' (the image is
  skipped: files elsewhere are not the data set's, nor in its cache key) and returns False."""
  if inside(path, folder):
    return True
  report('path_outside_folder', f'{where}: {path} resolves to {os.path.realpath(path)}, '
         f'outside {folder}; image skipped (images must lie in the data folder)')
  return False


def read_image(path, report):
  """JPEG bytes and (height, width) of an image file, or None (reported) if unreadable.

  The image is fully decoded once here, so a corrupt or truncated file is caught with its
  name now instead of failing later inside TensorFlow. Pixels are read as displayed
  (`image_files.to_rgb8`: EXIF orientation applied, 16-bit scaled to 8 bits); the size is the
  displayed one. A JPEG that is RGB or greyscale and not rotated is kept byte for byte; any
  other file is re-encoded as RGB JPEG (quality 95).
  """
  path = epath.Path(path)
  try:
    data = path.read_bytes()
  except (FileNotFoundError, OSError) as e:
    report('missing_image', f'{path}: cannot read image ({e}); image skipped')
    return None
  try:
    with Image.open(io.BytesIO(data)) as im:
      fmt, mode = im.format, im.mode
      im.load()  # Raises on truncated or corrupt data.
      rotated = image_files.orientation(im) != 1
      rgb = image_files.to_rgb8(im)
      if fmt != 'JPEG' or mode not in ('RGB', 'L') or rotated:
        buf = io.BytesIO()
        rgb.save(buf, format='JPEG', quality=95)
        data = buf.getvalue()
      size = (rgb.height, rgb.width)
  except image_files.UnsupportedPixels as e:
    report('bad_image', f'{path}: {e}; image skipped')
    return None
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many types)
    report('bad_image', f'{path}: corrupt or truncated image ({type(e).__name__}: {e}); '
           'image skipped')
    return None
  return data, size


def clip_box(box, name, report):
  """box: (ymin, xmin, ymax, xmax) normalized. Returns the clipped box or None (reported)."""
  b = np.asarray(box, np.float64)
  if not np.all(np.isfinite(b)):
    report('bad_box', f'{name}: non-finite box {box}; object dropped', fatal_if_raise=True)
    return None
  if b[0] >= b[2] or b[1] >= b[3]:
    report('degenerate_box', f'{name}: box with min >= max {box}; object dropped')
    return None
  tol = 1e-3
  if b.min() < -tol or b.max() > 1 + tol:
    report('box_outside_image', f'{name}: box {box} outside the image; clipped',
           fatal_if_raise=False)
  b = np.clip(b, 0.0, 1.0)
  if b[0] >= b[2] or b[1] >= b[3]:
    report('degenerate_box', f'{name}: box {box} empty after clipping; object dropped')
    return None
  return b.astype(np.float32)
