"""`ssd_shapes`: the embedded synthetic detection data set, as a tfds builder.

Generated deterministically from a seed (no download), cached by tfds in its data dir the
first time it is prepared. The drawing code is in `shapes_draw.py`; docs/data.md describes
the data. The default config has 5,000 training and 500 validation 300x300 images; tests
build small ones through `ShapesConfig` (or `make_config`).
"""

import dataclasses
import multiprocessing
import os

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from ssd_jax.data import shapes_draw
from ssd_jax import quiet  # pylint: disable=unused-import  (installs its log filter)

CLASS_NAMES = shapes_draw.CLASS_NAMES


@dataclasses.dataclass(eq=False)
class ShapesConfig(tfds.core.BuilderConfig):
  """Size and seeds of a generated shapes data set."""
  num_train: int = 5000
  num_validation: int = 500
  train_seed: int = 0
  validation_seed: int = 1  # A different seed: no validation image repeats a train image.
  num_workers: int = 0  # Processes drawing images; 0 = one per CPU core (at most 8).


def make_config(num_train=5000, num_validation=500, seed=0, num_workers=0) -> ShapesConfig:
  """A config whose name encodes its parameters (so tfds caches each one separately)."""
  if (num_train, num_validation, seed) == (5000, 500, 0):
    name = 'default'
  else:
    name = f'n{num_train}_{num_validation}_s{seed}'
  return ShapesConfig(name=name, num_train=num_train, num_validation=num_validation,
                      train_seed=2 * seed, validation_seed=2 * seed + 1,
                      num_workers=num_workers)


class SsdShapes(tfds.core.GeneratorBasedBuilder):
  """Synthetic shapes detection: 8 shape classes on cluttered, textured backgrounds."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First version.'}
  # Set explicitly: tfds' own lookup of the code path needs `importlib_resources`, which
  # the pinned stack does not install.
  code_path = epath.Path(__file__)
  BUILDER_CONFIGS = [make_config()]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(
                shape=(shapes_draw.IMAGE_SIZE, shapes_draw.IMAGE_SIZE, 3),
                encoding_format='jpeg'),
            'image/filename': tfds.features.Text(),
            'image/id': np.int64,
            'objects': tfds.features.Sequence({
                'bbox': tfds.features.BBoxFeature(),
                'label': tfds.features.ClassLabel(names=CLASS_NAMES),
                'is_difficult': np.bool_,
                'visible_fraction': np.float32,
            }),
        }),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    c = self.builder_config
    return {
        'train': self._generate_examples(c.train_seed, c.num_train, 'train'),
        'validation': self._generate_examples(c.validation_seed, c.num_validation, 'val'),
    }

  def _generate_examples(self, seed, num, prefix):
    args = [(seed, i, prefix) for i in range(num)]
    workers = self.builder_config.num_workers or min(len(os.sched_getaffinity(0)), 8)
    workers = min(workers, max(1, num // 64))
    if workers <= 1:
      yield from map(shapes_draw.make_example, args)
      return
    # 'spawn': the parent has TensorFlow loaded; workers need only numpy and PIL.
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
      yield from pool.imap(shapes_draw.make_example, args, chunksize=32)


def make_builder(num_train=5000, num_validation=500, seed=0, data_dir=None) -> SsdShapes:
  """The builder for these parameters (the registered 'default' config when they match)."""
  config = make_config(num_train, num_validation, seed)
  return SsdShapes(config='default' if config.name == 'default' else config,
                   data_dir=data_dir)
