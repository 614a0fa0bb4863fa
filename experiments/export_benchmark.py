r"""Batch latency of each export of one config's model (random weights, heads scaled as a trained
model has them; see tests/test_export.py), and optionally torchvision's ssd300_vgg16 with the
same weight scaling and images, interleaved in one run.

  python -m experiments.export_benchmark --config=configs/ssd300_voc.py --batch_size=1 \
      --formats=jax,tflite:none,tflite:dynamic,tflite:int8 --repeats=10 \
      [--torch_python=/path/to/torchenv/bin/python] [--export_dir=exports_bs1]

Times `call` of the jax export (jit-compiled once, then per batch) and the LiteRT interpreter
of a tflite export (batch 1: NMS inside; larger batches: plus the numpy NMS, its share printed
apart). torchvision runs in its own environment (experiments/torchvision_benchmark.py --serve
--trained_like): `model.eval()` on the batch, transform, forward and postprocess_detections
(its NMS) included; its NMS share is postprocess_detections timed alone. Each repeat calls
every side once, in turn. `--export_dir` keeps the exports (and reuses them on a rerun), so
the slow conversions can be made while the machine is busy and the timing run kept short.
Prints a markdown table.
"""

import os
import shutil
import statistics
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

from experiments import compare_torchvision
from ssd_jax import convert
from ssd_jax import export
from ssd_jax import export_tflite

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/smoke.py')
_BATCH = flags.DEFINE_integer('batch_size', 1, 'Images per call.')
_FORMATS = flags.DEFINE_list('formats', ['jax', 'tflite:none', 'tflite:dynamic'], 'Exports.')
_REPEATS = flags.DEFINE_integer('repeats', 20, 'Timed calls per export (interleaved); 0: '
                                'only make the exports (for --export_dir).')
_TORCH = flags.DEFINE_string('torch_python', None, 'Python of an environment with torch and '
                             'torchvision: time torchvision\'s ssd300_vgg16 alongside.')
_EXPORT_DIR = flags.DEFINE_string('export_dir', None, 'Keep the exports here and reuse those '
                                  'already there; none: a temporary folder.')


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
    run_benchmark(_CONFIG.value, tmp, _EXPORT_DIR.value or tmp)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def calibration_folder(folder, size, count=16):
  """Smooth synthetic scenes for --quantize=int8 (the benchmark's config has no data here)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  os.makedirs(folder, exist_ok=True)
  y, x = np.mgrid[0:size, 0:size] / size
  for i in range(count):
    a, b = np.cos(i), np.sin(i)
    image = np.stack([127 + 120 * np.sin(6 * (a * x + b * y)), 255 * x * y,
                      127 + 120 * np.cos(4 * (b * x - a * y))], -1)
    Image.fromarray(image.astype(np.uint8)).save(os.path.join(folder, f'{i}.png'))
  return folder


def make_exports(config, tmp, export_dir):
  """{spec: path}, exporting what `export_dir` does not hold yet."""
  run = os.path.join(tmp, 'run')
  os.makedirs(export_dir, exist_ok=True)
  paths = {}
  for spec in _FORMATS.value:
    fmt, _, quantize = spec.partition(':')
    path = os.path.join(export_dir, f"{spec.replace(':', '_')}_bs{_BATCH.value}")
    if not os.path.exists(export.sidecar_path(path)):
      if not os.path.exists(run):
        convert.save_workdir(run, config, random_params(config))
      calibration = (calibration_folder(os.path.join(tmp, 'calibration'),
                                        config.model.input_size)
                     if quantize == 'int8' else None)
      start = time.perf_counter()
      export.export_files(run, path, fmt=fmt, quantize=quantize or None, calibration=calibration,
                          batch_size=_BATCH.value if fmt == 'tflite' else None)
      print(f'{spec}: exported in {time.perf_counter() - start:.1f} s', flush=True)
    print(f'{spec}: {path}, {os.path.getsize(path) / 2**20:.1f} MiB', flush=True)
    paths[spec] = path
  return paths


def run_benchmark(config, tmp, export_dir):
  paths = make_exports(config, tmp, export_dir)
  if not _REPEATS.value:  # Exports only (with --export_dir: time them later).
    return
  runners = {}  # spec -> (call, numpy NMS after it or None)
  for spec, path in paths.items():
    if spec == 'jax':
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
  size = config.model.input_size if config.eval.scales is None else max(
      s[0] for s in config.eval.scales)
  y, x = np.mgrid[0:size, 0:size] / size  # Smooth images: a gradient per channel.
  images = np.stack([np.stack([200 * x, 150 * y + 50, 120 + 80 * x * y], -1)] * _BATCH.value
                    ).astype(np.uint8)
  torch = None
  if _TORCH.value:
    torch = compare_torchvision.Torchvision(_TORCH.value, _BATCH.value,
                                            len(config.input.class_names) + 1,
                                            ['--trained_like'])
  times = {spec: [] for spec in runners}
  nms = {spec: [] for spec in runners}
  for spec, (fn, post) in runners.items():  # Warm-up (compiles the jax export).
    out = fn(images)
    if post:
      post(out)
  if torch:
    times['torchvision'], nms['torchvision'] = [], []
    torch.times('inference', 2)
    torch.times('postprocess', 2)
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
    if torch:
      times['torchvision'] += torch.times('inference', 1)
      nms['torchvision'] += torch.times('postprocess', 1)
  if torch:
    torch.close()
  print(f'\nbatch {_BATCH.value}, {_REPEATS.value} repeats, load average '
        f'{os.getloadavg()[0]:.2f}\n')
  print('| model | median s/batch | of which NMS | NMS share |\n|---|---|---|---|')
  for spec in times:
    median = statistics.median(times[spec])
    if spec in runners and not runners[spec][1]:
      print(f'| {spec} | {median:.4f} | inside | - |')
    else:
      share = statistics.median(nms[spec])
      print(f'| {spec} | {median:.4f} | {share:.4f} | {share / median:.0%} |')
  if torch:
    base = statistics.median(times['torchvision'])
    for spec in runners:
      print(f'torchvision / {spec}: {base / statistics.median(times[spec]):.2f}x')


if __name__ == '__main__':
  from ssd_jax import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
