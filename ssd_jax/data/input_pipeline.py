"""Input pipelines: tfds sources -> SSD augmentation -> padded numpy-ready batches.

Public API (used by the training loop):
  get_dataset_info(config) -> DatasetInfo
  create_train_dataset(config, *, start_step=0, process_index=None, process_count=None)
  create_eval_dataset(config, *, process_index=None, process_count=None)
Both datasets yield dicts of tensors laid out as docs/CONVENTIONS.md; convert them with
`tfds.as_numpy`. docs/data.md describes sources, augmentation and the bad-input policy.
"""

import dataclasses
import functools
import math
import re

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ssd_jax import anchors
from ssd_jax import errors
from ssd_jax.data import augment
from ssd_jax.data import coco_folder
from ssd_jax.data.info import DEFAULT_SPLITS
from ssd_jax.data.info import DatasetInfo  # pylint: disable=unused-import  (re-exported)
from ssd_jax.data import problems
from ssd_jax.classes import COCO_CLASSES
from ssd_jax.classes import VOC_CLASSES
from ssd_jax.data import shapes
from ssd_jax.data import voc_folder

try:
  tf.config.set_visible_devices([], 'GPU')  # Keep TensorFlow off the accelerators.
except RuntimeError:  # TensorFlow was initialized before this import; too late to change.
  pass

# tfds `coco` label k is COCO_CATEGORY_IDS[k] (the real COCO ids of COCO_CLASSES).
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90)

# Default (train, eval) split per dataset; override with config.input.train_split /
# config.input.eval_split. For 'voc' the train split is read from voc/2007 and voc/2012.
_INT_IDS = ('coco', 'coco_folder')  # Datasets whose image_id is an int64 (else file stem).

TRAIN_KEYS = ('image', 'boxes', 'labels', 'mask', 'difficult', 'crowd')
EVAL_KEYS = TRAIN_KEYS + ('image_id', 'orig_size', 'example_mask')


@dataclasses.dataclass(frozen=True)
class _Source:
  builder: tfds.core.DatasetBuilder
  split: str


# --- Sources ---------------------------------------------------------------------------------


def _splits(config):
  name = config.input.dataset
  if name not in DEFAULT_SPLITS:
    raise errors.UserError(f'config.input.dataset={name!r}: unknown; one of '
                           f'{list(DEFAULT_SPLITS)}.')
  train, evaluation = DEFAULT_SPLITS[name]
  return (config.input.train_split or train,
          config.input.eval_split or evaluation)


def _prepared(builder):
  """Prepares (generates or copies) the data if needed: process 0 first, then the others.

  On shared storage the others then find it ready; two processes writing the same data set
  at once would collide when tfds renames its finished folder.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    if jax.process_index() == 0:
      builder.download_and_prepare()
    multihost_utils.sync_global_devices(f'ssd_jax:prepared:{builder.data_dir}')
  builder.download_and_prepare()
  return builder


# Prepared folder builders by (kind, config name, data_dir): the name changes when the
# folder's files do, so an edit is seen even within one process, and each builder is
# prepared (and its summary printed) once per process.
_FOLDER_BUILDERS = {}


def _folder_builder(kind, folder, class_names, splits, on_error, data_dir):
  if kind == 'voc_folder':
    cfg, cls = voc_folder.make_config(folder, class_names, splits, on_error), voc_folder.VocFolder
  else:
    cfg, cls = coco_folder.make_config(folder, splits, on_error), coco_folder.CocoFolder
  key = (kind, cfg.name, data_dir)
  if key not in _FOLDER_BUILDERS:
    _FOLDER_BUILDERS[key] = _prepared(cls(config=cfg, data_dir=data_dir))
  return _FOLDER_BUILDERS[key]


def _sources(config, training):
  """The (builder, split) pairs to read, prepared (generated / copied) if needed."""
  name = config.input.dataset
  data_dir = config.input.data_dir
  train_split, eval_split = _splits(config)
  if name == 'voc':
    if training:
      return [_Source(_prepared(tfds.builder(n, data_dir=data_dir)), train_split)
              for n in ('voc/2007', 'voc/2012')]
    return [_Source(_prepared(tfds.builder('voc/2007', data_dir=data_dir)), eval_split)]
  if name == 'coco':
    b = _prepared(tfds.builder('coco/2017', data_dir=data_dir))
    return [_Source(b, train_split if training else eval_split)]
  if name == 'shapes':
    b = _prepared(shapes.make_builder(config.input.shapes_num_train,
                                      config.input.shapes_num_validation,
                                      config.input.shapes_seed, data_dir))
    return [_Source(b, train_split if training else eval_split)]
  if name in ('voc_folder', 'coco_folder'):
    folder = config.input.folder
    if not folder:
      raise errors.UserError(f'config.input.folder must be set for dataset {name!r}.')
    b = _folder_builder(name, folder, tuple(config.input.class_names),
                        (train_split, eval_split), config.input.on_error,
                        data_dir)
    return [_Source(b, train_split if training else eval_split)]
  raise errors.UserError(f'config.input.dataset={name!r}: unknown; one of '
                         f'{list(DEFAULT_SPLITS)}.')


_DOWNLOADED = {'voc': (('voc/2007', 'voc/2012'), ('voc/2007',)),
               'coco': (('coco/2017',), ('coco/2017',))}  # (train, eval) tfds names.


def missing_data(config, *, training: bool = True) -> str | None:
  """Why the config's train (or eval) data cannot be read without a download; None if it can.

  `voc` and `coco` are read only where tfds has prepared them in config.input.data_dir (tfds
  would otherwise download them); a folder data set needs its folder; `shapes` is generated.
  Looks at the folders only: builds no pipeline and prepares nothing.
  """
  name = config.input.dataset
  _splits(config)  # An unknown data set: UserError.
  if name in _DOWNLOADED:
    for tfds_name in _DOWNLOADED[name][0 if training else 1]:
      builder = tfds.builder(tfds_name, data_dir=config.input.data_dir)
      if not (builder.data_path.exists() and builder.is_prepared()):
        return (f'{tfds_name} is not prepared in {builder.data_dir} (tfds would download it; '
                'set config.input.data_dir to where it is)')
  elif name in ('voc_folder', 'coco_folder'):
    folder = config.input.folder
    if not folder or not tf.io.gfile.isdir(folder):
      return f'config.input.folder={folder!r} is not a folder (dataset {name!r})'
  return None


def _num_examples(builder, split):
  """Examples in `split` from the tfds metadata, else the dataset's known cardinality
  (tfds mock data), else None."""
  try:
    return int(builder.info.splits[split].num_examples)
  except Exception:  # pylint: disable=broad-except  (no split metadata, e.g. mock data)
    pass
  try:
    n = int(builder.as_dataset(split=split).cardinality())
  except Exception:  # pylint: disable=broad-except
    return None
  return n if n >= 0 else None


def _check_not_empty(source):
  n = _num_examples(source.builder, source.split)
  if n == 0:
    raise errors.UserError(f'split {source.split!r} of {source.builder.name} '
                           f'({source.builder.data_dir}) is empty.')
  return n


def get_dataset_info(config) -> DatasetInfo:
  """Class names, split sizes and id mapping of config.input.dataset (prepares it)."""
  name = config.input.dataset
  train_split, eval_split = _splits(config)
  train_sources = _sources(config, training=True)
  eval_source = _sources(config, training=False)[0]
  counts = [_num_examples(s.builder, s.split) for s in train_sources]
  num_train = None if None in counts else sum(counts)
  num_eval = _num_examples(eval_source.builder, eval_source.split)
  category_ids, folder = None, None
  if name == 'voc':
    class_names = VOC_CLASSES
  elif name == 'coco':
    class_names, category_ids = COCO_CLASSES, COCO_CATEGORY_IDS
  elif name == 'shapes':
    class_names = shapes.CLASS_NAMES
  else:
    cfg = eval_source.builder.builder_config
    class_names = cfg.class_names
    category_ids = cfg.category_ids or None
    folder = cfg.folder
  return DatasetInfo(name=name, class_names=tuple(class_names), num_train_examples=num_train,
                     num_eval_examples=num_eval, train_split=train_split,
                     eval_split=eval_split, category_ids=category_ids, folder=folder,
                     image_id_dtype='int64' if name in _INT_IDS else 'bytes')


# --- Per-example ops -------------------------------------------------------------------------


def to_common(example, *, int_ids):
  """A tfds example (any of our sources, image not decoded) -> the common raw layout."""
  objects = example['objects']
  # All per-object features have the same length in real data; tfds mock data draws each
  # one's length separately, so use the shortest.
  n = tf.reduce_min([tf.shape(v)[0] for v in objects.values()])
  objects = {k: v[:n] for k, v in objects.items()}
  boxes = tf.cast(objects['bbox'], tf.float32)
  no = tf.zeros([n], tf.bool)
  name = example['image/filename']
  if int_ids:
    image_id = tf.cast(example['image/id'], tf.int64)
  else:
    image_id = tf.strings.regex_replace(name, r'\.[^.]*$', '')
  return {
      'image': example['image'],
      'boxes': boxes,
      'labels': tf.cast(objects['label'], tf.int32) + 1,
      'difficult': tf.cast(objects['is_difficult'], tf.bool) if 'is_difficult' in objects
                   else no,
      'crowd': tf.cast(objects['is_crowd'], tf.bool) if 'is_crowd' in objects else no,
      'name': name,
      'image_id': image_id,
  }


def decode(example):
  """Decodes the image to float32 [H, W, 3] (0..255) and records orig_size.

  Accepts encoded bytes (the normal case) or an already decoded uint8 image (mock data).
  """
  image = example['image']
  if image.dtype == tf.string:
    image = tf.io.decode_image(image, channels=3, expand_animations=False)
  image = tf.ensure_shape(image, [None, None, 3])
  return {**example, 'image': tf.cast(image, tf.float32),
          'orig_size': tf.shape(image)[:2]}


def sanitize_boxes(example):
  """Reorders swapped coordinates, clips to [0, 1], drops empty or non-finite boxes.

  Counted (problems.COUNTS) and logged with the image name: 'reordered_box' (min > max:
  coordinates swapped back, box kept), 'degenerate_box' (zero area after clipping, or
  non-finite: box removed).
  """
  b = example['boxes']
  finite = tf.reduce_all(tf.math.is_finite(b), axis=1)
  b = tf.where(finite[:, None], b, 0.0)
  swapped = (b[:, 0] > b[:, 2]) | (b[:, 1] > b[:, 3])
  b = tf.stack([tf.minimum(b[:, 0], b[:, 2]), tf.minimum(b[:, 1], b[:, 3]),
                tf.maximum(b[:, 0], b[:, 2]), tf.maximum(b[:, 1], b[:, 3])], axis=1)
  b = tf.clip_by_value(b, 0.0, 1.0)
  valid = finite & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
  n_swapped = tf.reduce_sum(tf.cast(swapped & valid, tf.int32))
  n_bad = tf.reduce_sum(tf.cast(tf.logical_not(valid), tf.int32))
  r1 = problems.report_if(n_swapped > 0, 'reordered_box', example['name'], n_swapped,
                          'boxes with min > max (coordinates reordered)')
  r2 = problems.report_if(n_bad > 0, 'degenerate_box', example['name'], n_bad,
                          'empty or non-finite boxes removed')
  with tf.control_dependencies([r1, r2]):
    b = tf.identity(b)
  return augment.gather_boxes({**example, 'boxes': b}, valid)


def pad_boxes(example, *, max_boxes):
  """Pads the per-box keys to max_boxes and adds `mask`; keeps the first max_boxes (counted
  as 'too_many_boxes' with the image name) when there are more."""
  n = tf.shape(example['boxes'])[0]
  report = problems.report_if(n > max_boxes, 'too_many_boxes', example['name'],
                              n - max_boxes, f'boxes beyond max_boxes={max_boxes} dropped')
  with tf.control_dependencies([report]):
    n = tf.identity(n)
  k = tf.minimum(n, max_boxes)
  out = dict(example)
  for key in augment.PER_BOX_KEYS:
    x = example[key][:k]
    pad = [[0, max_boxes - k]] + [[0, 0]] * (len(x.shape) - 1)
    out[key] = tf.ensure_shape(tf.pad(x, pad), [max_boxes] + x.shape[1:].as_list())
  real = tf.range(max_boxes) < k
  out['mask'] = real & tf.logical_not(out['crowd'])
  return out


# --- Datasets --------------------------------------------------------------------------------


def _process(process_index, process_count):
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  return process_index, process_count


def derive_seed(*ints) -> int:
  """A 31-bit seed that depends on all of `ints` (e.g. seed, start_step, process)."""
  return int(np.random.SeedSequence([int(i) for i in ints]).generate_state(1)[0] >> 1)


def _options():
  options = tf.data.Options()
  options.deterministic = True
  options.threading.max_intra_op_parallelism = 1
  return options


def _under_mock_data():
  """True inside `tfds.testing.mock_data`.

  Its random examples cannot be encoded (the sub-features of a Sequence get different
  lengths), so it fails whenever `decoders` are passed; there we let tfds decode the image.
  """
  fn = getattr(tfds.core.DatasetBuilder, 'as_dataset', None)
  return getattr(fn, '__module__', '').startswith('tensorflow_datasets.testing')


def _read(source, split, *, shuffle, seed=None):
  """Reads a split with the image left encoded (decoded after the shuffle buffer)."""
  read_config = tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=False)
  decoders = None if _under_mock_data() else {'image': tfds.decode.SkipDecoding()}
  return source.builder.as_dataset(split=split, shuffle_files=shuffle,
                                   read_config=read_config, decoders=decoders)


def create_train_dataset(config, *, start_step=0, process_index=None,
                         process_count=None) -> tf.data.Dataset:
  """Endless, shuffled, augmented training batches for this process.

  Batches of config.input.batch_size // process_count with keys TRAIN_KEYS. Deterministic
  given (config.input.seed, start_step, process_index): a resumed run passes its step, so
  shuffling and augmentation continue with fresh randomness instead of replaying the start.
  """
  pi, pc = _process(process_index, process_count)
  if config.input.batch_size % pc:
    raise errors.UserError(f'config.input.batch_size={config.input.batch_size} is not divisible '
                           f'by the {pc} processes.')
  batch_size = config.input.batch_size // pc
  seed = derive_seed(config.input.seed, start_step, pi)
  int_ids = config.input.dataset in _INT_IDS
  sources = _sources(config, training=True)
  datasets, weights = [], []
  for k, src in enumerate(sources):
    n = _check_not_empty(src)
    split = tfds.split_for_jax_process(src.split, process_index=pi, process_count=pc)
    ds = _read(src, split, shuffle=True, seed=derive_seed(seed, k))
    ds = ds.map(functools.partial(to_common, int_ids=int_ids), tf.data.AUTOTUNE)
    datasets.append(ds.repeat())
    weights.append(float(n or 1))
  if len(datasets) == 1:
    ds = datasets[0]
  else:
    ds = tf.data.Dataset.sample_from_datasets(
        datasets, weights=[w / sum(weights) for w in weights], seed=derive_seed(seed, 100))
  ds = ds.shuffle(config.input.shuffle_buffer, seed=derive_seed(seed, 101))

  ops = augment.train_ops(config)
  max_boxes = config.input.max_boxes
  aug_seed = derive_seed(seed, 102)

  def preprocess(index, example):
    example = decode(example)
    example = sanitize_boxes(example)
    example['rng'] = tf.stack([tf.constant(aug_seed, tf.int64), index])
    example = augment.apply_ops(ops, example)
    example = pad_boxes(example, max_boxes=max_boxes)
    return {k: example[k] for k in TRAIN_KEYS}

  ds = ds.enumerate().map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch_size, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _pad_batch(batch, size):
  """Pads every key of a (possibly short) batch to `size` examples."""

  def pad(x):
    n_pad = size - tf.shape(x)[0]
    shape = tf.concat([[n_pad], tf.shape(x)[1:]], 0)
    filler = tf.fill(shape, '') if x.dtype == tf.string else tf.zeros(shape, x.dtype)
    return tf.ensure_shape(tf.concat([x, filler], 0), [size] + x.shape[1:].as_list())

  return {k: pad(v) for k, v in batch.items()}


def create_eval_dataset(config, *, process_index=None, process_count=None) -> tf.data.Dataset:
  """One pass over the eval split for this process: every image, no augmentation.

  Batches of config.input.eval_batch_size // process_count (the global eval batch is split
  over processes, as in training) with keys EVAL_KEYS; the last batch
  is padded with example_mask False, and when the split size is known every process yields
  the same number of batches (extra all-padding batches). config.eval.num_images (None = all)
  takes the first images of the split.
  """
  pi, pc = _process(process_index, process_count)
  if config.input.eval_batch_size % pc:
    raise errors.UserError(f'config.input.eval_batch_size={config.input.eval_batch_size} is not '
                           f'divisible by the {pc} processes.')
  batch_size = config.input.eval_batch_size // pc
  source = _sources(config, training=False)[0]
  n_total = _check_not_empty(source)
  split = source.split
  num_images = config.eval.num_images
  if num_images is not None:
    if re.search(r'[\[+]', split):
      raise errors.UserError(f'config.eval.num_images needs a plain eval split, got {split!r}.')
    split = f'{split}[:{int(num_images)}]'
    n_total = int(num_images) if n_total is None else min(n_total, int(num_images))
  split = tfds.split_for_jax_process(split, process_index=pi, process_count=pc)
  ds = _read(source, split, shuffle=False)
  ops = augment.eval_ops(config, anchors.eval_input_size(config))
  max_boxes = config.input.eval_max_boxes or config.input.max_boxes
  int_ids = config.input.dataset in _INT_IDS

  def preprocess(example):
    example = to_common(example, int_ids=int_ids)
    example = decode(example)
    example = sanitize_boxes(example)
    example = augment.apply_ops(ops, example)
    example = pad_boxes(example, max_boxes=max_boxes)
    example['example_mask'] = tf.constant(True)
    example['orig_size'] = tf.cast(example['orig_size'], tf.int32)
    return {k: example[k] for k in EVAL_KEYS}

  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch_size).map(functools.partial(_pad_batch, size=batch_size))
  if n_total is not None:
    per_process = math.ceil(n_total / pc)
    num_batches = math.ceil(per_process / batch_size)
    empty = tf.nest.map_structure(
        lambda s: tf.fill(s.shape, '') if s.dtype == tf.string else tf.zeros(s.shape, s.dtype),
        ds.element_spec)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(empty).repeat()).take(num_batches)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())
