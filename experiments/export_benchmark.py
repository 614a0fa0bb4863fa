r"""Batch latency of each export of one config's model (random weights, heads scaled as a trained
model has them; see tests/test_export.py), interleaved in one run.

  python -m experiments.export_benchmark --config=configs/smoke.py --batch_size=1 \
      --formats=jax,tflite:none,tflite:dynamic --repeats=20

Times `call` of the jax export (jit-compiled once, then per batch) and the LiteRT interpreter
of a tflite export (batch 1: NMS inside; larger batches: plus the numpy NMS, its share printed
apart). Prints a markdown table.
"""

import os
import shutil
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

from ssd_jax import convert
from ssd_jax import export
from ssd_jax import export_tflite

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/smoke.py')
_BATCH = flags.DEFINE_integer('batch_size', 1, 'Images per call.')
_FORMATS = flags.DEFINE_list('formats', ['jax', 'tflite:none', 'tflite:dynamic'], 'Exports.')
_REPEATS = flags.DEFINE_integer('repeats', 20, 'Timed calls per export (interleaved).')


def random_params(config):
  """He-initialised params, loc heads x0.02, conf heads x0.3 (as tests/test_export.py):
  box offsets and logits of the size a trained model gives."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from ssd_jax import models  # pylint: disable=g-import-not-at-top
  size = config.model.input_size
  model = models.create_model(config.model, models.default_boxes(config).boxes_per_cell, len(config.input.class_names))
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(1), jnp.zeros((1, size, size, 3)))
  rng = np.random.default_rng(0)
  params = {}
  for key, s in traverse_util.flatten_dict(shapes['params'], sep='/').items():
    std = np.sqrt(2 / np.prod(s.shape[:-1])) if len(s.shape) > 1 else 0.1
    std *= 0.02 if key.startswith('loc_') else 0.3 if key.startswith('conf_') else 1
    params[key] = (rng.standard_normal(s.shape) * std).astype(np.float32)
  if 'vgg16/conv4_3_norm/scale' in params:
    params['vgg16/conv4_3_norm/scale'][:] = 20.0
  return traverse_util.unflatten_dict(params, sep='/')


def main(argv):
  del argv
  tmp = tempfile.mkdtemp(prefix='export_benchmark_')
  try:
    run_benchmark(_CONFIG.value, tmp)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def run_benchmark(config, tmp):
  run = os.path.join(tmp, 'run')
  convert.save_workdir(run, config, random_params(config))
  runners = {}
  for spec in _FORMATS.value:
    fmt, _, quantize = spec.partition(':')
    path = os.path.join(tmp, spec.replace(':', '_'))
    start = time.perf_counter()
    export.export_files(run, path, fmt=fmt, quantize=quantize or None,
                        batch_size=_BATCH.value if fmt == 'tflite' else None)
    seconds = time.perf_counter() - start
    if fmt == 'jax':
      with open(path, 'rb') as f:
        exported = jax.export.deserialize(bytearray(f.read()))
      runners[spec] = (lambda x, e=exported: jax.block_until_ready(e.call(x)), None)
    else:
      meta = export.load_sidecar(path)
      runner = export_tflite.Runner(path, meta)
      if meta['nms_inside']:  # Batch 1: TFLite_Detection_PostProcess in the file.
        runners[spec] = (runner, None)
      else:
        runners[spec] = (runner.raw, lambda raw, m=meta: export_tflite.detections(
            raw['raw_boxes'], raw['raw_scores'], m))
    print(f'{spec}: exported in {seconds:.1f} s, {os.path.getsize(path) / 2**20:.1f} MiB')
  size = config.model.input_size if config.eval.scales is None else max(
      s[0] for s in config.eval.scales)
  y, x = np.mgrid[0:size, 0:size] / size  # Smooth images: a gradient per channel.
  images = np.stack([np.stack([200 * x, 150 * y + 50, 120 + 80 * x * y], -1)] * _BATCH.value
                    ).astype(np.uint8)
  times = {spec: [] for spec in runners}
  nms = {spec: [] for spec in runners}
  for spec, (fn, post) in runners.items():  # Warm-up (compiles the jax export).
    out = fn(images)
    if post:
      post(out)
  for _ in range(_REPEATS.value):
    for spec, (fn, post) in runners.items():
      start = time.perf_counter()
      out = fn(images)
      middle = time.perf_counter()
      if post:
        post(out)
      end = time.perf_counter()
      times[spec].append(end - start)
      nms[spec].append(end - middle)
  print(f'\n| export | batch | median s/batch | of which numpy NMS |\n|---|---|---|---|')
  for spec in runners:
    share = f'{np.median(nms[spec]):.4f}' if runners[spec][1] else 'inside'
    print(f'| {spec} | {_BATCH.value} | {np.median(times[spec]):.4f} | {share} |')


if __name__ == '__main__':
  from ssd_jax import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
