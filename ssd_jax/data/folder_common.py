"""Pieces shared by the local-folder tfds builders (`voc_folder`, `coco_folder`)."""

import collections
import dataclasses
import hashlib
import io
import os

from absl import logging
from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from ssd_jax.data import problems


class DataError(ValueError):
  """Bad input that stops preparation (policy 'raise', or nothing usable left)."""


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
  """A local folder to read. `on_error`: 'skip' (count and log) or 'raise'."""
  folder: str = ''
  class_names: tuple = ()
  category_ids: tuple = ()  # COCO only: label i (1-based) has category id category_ids[i-1].
  splits: tuple = ()
  on_error: str = 'skip'


def config_name(folder, class_names, splits, extra_files=()):
  """A name unique to the folder, class list, splits and the annotation files' mtimes."""
  h = hashlib.sha1()
  h.update(os.path.abspath(folder).encode())
  h.update(repr(tuple(class_names)).encode())
  h.update(repr(tuple(splits)).encode())
  for f in extra_files:
    h.update(f'{f}:{os.path.getmtime(f) if os.path.exists(f) else None}'.encode())
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

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First version.'}
  FORMAT = ''

  def __init__(self, *, config: FolderConfig, **kwargs):
    super().__init__(config=config, **kwargs)
    self.problem_counts = {}

  def _info(self):
    return self.dataset_info_from_configs(
        description=f'{self.FORMAT}-format folder {self.builder_config.folder}',
        features=features(self.builder_config.class_names))

  def _new_report(self, split) -> 'Problems':
    """A problem report for generating `split`; `problem_counts[split]` shows its counts."""
    report = Problems(split, self.builder_config.on_error)
    self.problem_counts[split] = report.counts
    return report


class Problems:
  """Per-split problem counts for a folder builder, applying the on_error policy."""

  def __init__(self, split, on_error):
    if on_error not in ('skip', 'raise'):
      raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    self.split = split
    self.on_error = on_error
    self.counts = collections.Counter()

  def __call__(self, kind, message, fatal_if_raise=True):
    self.counts[kind] += 1
    if self.on_error == 'raise' and fatal_if_raise:
      raise DataError(f'[{kind}] {message}')
    problems.record(kind, message)


def read_image(path, report):
  """JPEG bytes and (height, width) of an image file, or None (reported) if unreadable.

  The image is fully decoded once here, so a corrupt or truncated file is caught with its
  name now instead of failing later inside TensorFlow. Non-JPEG or non-RGB files are
  re-encoded as RGB JPEG.
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
      if fmt != 'JPEG' or mode not in ('RGB', 'L'):
        buf = io.BytesIO()
        im.convert('RGB').save(buf, format='JPEG', quality=95)
        data = buf.getvalue()
      size = (im.height, im.width)
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


def log_summary(builder_name, split, num_images, num_empty, report):
  c = dict(report.counts)
  logging.info('%s split %r: %d images written, %d without objects; problems: %s',
               builder_name, split, num_images, num_empty, c or 'none')
  if num_images == 0:
    raise DataError(f'{builder_name}: split {split!r} is empty (no usable image; problems: '
                    f'{c or "none"})')
