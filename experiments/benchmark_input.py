r"""Input pipeline throughput: decode + augment + batch, in images/s per CPU core.

Two workloads, both through `create_train_dataset` with the config's augmentation:
  shapes      the embedded synthetic data (300x300 JPEGs); generated first if needed.
  voc_folder  a temporary VOCdevkit-style folder of VOC-sized (500x375) JPEGs, read through
              the voc_folder builder (its one-off preparation is timed separately).
and the evaluation pipeline (resize + normalize) on the shapes validation split.

  python -m experiments.benchmark_input --config=configs/default.py \
      [--config.input.data_dir=/path/to/tfds] [--num_batches=40] [--output=out.json]

Two per-core figures: wall-clock images/s divided by the cores this process may use
(os.sched_getaffinity; a lower bound on a shared machine), and images per CPU-second of
this process (user + system time of all its threads: the cost per core, insensitive to
other load).
"""

import json
import os
import tempfile
import time

from absl import flags
from ml_collections import config_flags
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax import file_io
from ssd_jax.data import input_pipeline
from ssd_jax.data import shapes_draw

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/default.py', 'Config file.')
_NUM_BATCHES = flags.DEFINE_integer('num_batches', 40, 'Timed batches per workload.')
_WARMUP = flags.DEFINE_integer('warmup_batches', 5, 'Untimed batches first.')
_VOC_IMAGES = flags.DEFINE_integer('voc_images', 300, 'JPEGs in the temporary VOC folder.')
_OUTPUT = flags.DEFINE_string('output', 'benchmark_input.json', 'Where to write results.')
_WORKLOADS = flags.DEFINE_list('workloads', ['shapes', 'voc_folder', 'shapes_eval'],
                               'Which workloads to run.')


def _time(ds, batch_size, warmup, num_batches):
  it = iter(tfds.as_numpy(ds))
  for _ in range(warmup):
    next(it)
  t, cpu = time.perf_counter(), time.process_time()
  n = 0
  for _ in range(num_batches):
    try:
      next(it)
    except StopIteration:
      break
    n += 1
  dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
  return n * batch_size / dt, n, dt, dcpu


def write_voc_folder(root, num_images, class_names, seed=0):
  """VOC-sized JPEGs (500x375, natural-ish content from the shapes generator)."""
  for d in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
    os.makedirs(os.path.join(root, d), exist_ok=True)
  rng = np.random.default_rng(seed)
  ids = []
  for i in range(num_images):
    image, objects = shapes_draw.draw_example(seed, i)
    w, h = (500, 375) if i % 4 else (375, 500)  # Mostly landscape, as VOC.
    Image.fromarray(image).resize((w, h), Image.BILINEAR).save(
        os.path.join(root, 'JPEGImages', f'{i:06d}.jpg'), quality=90)
    objs = ''
    for b in objects['bbox'][:20]:
      x0, y0, x1, y1 = b[1] * w + 1, b[0] * h + 1, b[3] * w, b[2] * h
      name = class_names[int(rng.integers(len(class_names)))]
      objs += (f'<object><name>{name}</name><difficult>0</difficult><bndbox>'
               f'<xmin>{x0:.0f}</xmin><ymin>{y0:.0f}</ymin><xmax>{x1:.0f}</xmax>'
               f'<ymax>{y1:.0f}</ymax></bndbox></object>')
    with open(os.path.join(root, 'Annotations', f'{i:06d}.xml'), 'w') as f:
      f.write(f'<annotation><filename>{i:06d}.jpg</filename><size><width>{w}</width>'
              f'<height>{h}</height><depth>3</depth></size>{objs}</annotation>')
    ids.append(f'{i:06d}')
  for split in ('trainval', 'test'):
    with open(os.path.join(root, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
      f.write('\n'.join(ids) + '\n')


def main(argv):
  del argv
  config = config_keys.from_command_line(_CONFIG.value)
  cores = len(os.sched_getaffinity(0))
  results = {'cores': cores, 'batch_size': config.input.batch_size,
             'input_size': config.model.input_size, 'augment': config.input.augment.to_dict(),
             'num_batches': _NUM_BATCHES.value, 'tf_version': tf.__version__}
  kw = dict(process_index=0, process_count=1)

  def record(name, ds, batch_size, extra=None):
    rate, n, dt, cpu = _time(ds, batch_size, _WARMUP.value, _NUM_BATCHES.value)
    per_cpu_s = n * batch_size / cpu
    results[name] = {'images_per_s': rate, 'images_per_s_per_core': rate / cores,
                     'images_per_cpu_second': per_cpu_s, 'batches': n, 'seconds': dt,
                     'cpu_seconds': cpu, **(extra or {})}
    print(f'{name}: {rate:.1f} images/s = {rate / cores:.1f} images/s/core wall; '
          f'{per_cpu_s:.1f} images per CPU-second ({n} batches of {batch_size} in '
          f'{dt:.1f} s)', flush=True)

  if {'shapes', 'shapes_eval'} & set(_WORKLOADS.value):
    shapes_config = config.copy_and_resolve_references()
    shapes_config.input.dataset = 'shapes'
    t = time.perf_counter()
    input_pipeline.get_dataset_info(shapes_config)  # Generates the data set if needed.
    results['shapes_prepare_seconds'] = time.perf_counter() - t
    if 'shapes' in _WORKLOADS.value:
      record('shapes', input_pipeline.create_train_dataset(shapes_config, **kw),
             config.input.batch_size)
    if 'shapes_eval' in _WORKLOADS.value:
      record('shapes_eval', input_pipeline.create_eval_dataset(shapes_config, **kw),
             config.input.eval_batch_size)

  if 'voc_folder' in _WORKLOADS.value:
    with tempfile.TemporaryDirectory() as tmp:
      folder = os.path.join(tmp, 'VOCdevkit', 'VOC2007')
      write_voc_folder(folder, _VOC_IMAGES.value, tuple(config.input.class_names))
      voc_config = config.copy_and_resolve_references()
      voc_config.input.dataset = 'voc_folder'
      voc_config.input.folder = folder
      voc_config.input.data_dir = os.path.join(tmp, 'tfds')
      t = time.perf_counter()
      input_pipeline.get_dataset_info(voc_config)
      prep = time.perf_counter() - t
      record('voc_folder', input_pipeline.create_train_dataset(voc_config, **kw),
             config.input.batch_size,
             {'image_size': '500x375', 'num_images': _VOC_IMAGES.value,
              'prepare_seconds': prep})

  file_io.write_text(_OUTPUT.value, json.dumps(results, indent=2))
  print(f'Wrote {_OUTPUT.value}')


if __name__ == '__main__':
  cli.run(main)
