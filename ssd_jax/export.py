r"""Command line: export a trained detector so that it runs without ssd_jax (docs/export.md).

  python -m ssd_jax.export --workdir=<run> [--step=N] [--format=jax|tflite] --output=<file> \
      [--batch_size=1] [--quantize=none|dynamic|int8] [--calibration=<image folder>]

Every export takes uint8 RGB images already resized (bilinear warp, no aspect preservation) to
the model's input size S x S, normalizes them inside, runs the config's whole eval step
(multi-scale `eval.scales` included) and returns fixed-size detections, named as the TF Object
Detection API's TFLite models name them:
  detection_boxes    [B, K, 4] float32  ymin, xmin, ymax, xmax in pixels of the S x S input
  detection_classes  [B, K]    int32    index into the sidecar's class_names (0-based)
  detection_scores   [B, K]    float32  descending; rows from num_detections on are padding
  num_detections     [B]       int32
Beside the export, `<output>.json` (the sidecar) holds all a loader needs: input size, pixel
format and normalization, box format, class names, thresholds, NMS settings, the source
workdir and step, and the project version.

--format=jax: a serialized `jax.export.Exported` of the whole eval step, batch size symbolic,
lowered for CPU and CUDA; loading needs only jax (`jax.export.deserialize(data).call(images)`).
--format=tflite: jax2tf -> SavedModel -> TFLiteConverter for a fixed batch size, optionally
quantized; NMS inside as TFLite_Detection_PostProcess at batch 1 (`ssd_jax.export_tflite`).
"""

import json
import os

from absl import app
from absl import flags
import numpy as np

import ssd_jax
from ssd_jax import cli
from ssd_jax import errors
from ssd_jax import quiet
from ssd_jax import report

FLAGS = flags.FLAGS
PROG = 'ssd_jax.export'
FORMATS = ('jax', 'tflite')
QUANTIZE = ('none', 'dynamic', 'int8')
SIDECAR_FORMAT = 1  # The sidecar's layout; a loader refuses other values.
OUTPUT_NAMES = ('detection_boxes', 'detection_classes', 'detection_scores', 'num_detections')


def define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'Training workdir (or `ssd_jax.convert` output).')
  flags.DEFINE_integer('step', None, 'Checkpoint step; default: the latest.')
  flags.DEFINE_string('format', 'jax', f'One of {", ".join(FORMATS)}.')
  flags.DEFINE_string('output', None, 'File to write (a new file); the sidecar goes to '
                      '<output>.json.')
  flags.DEFINE_integer('batch_size', None, 'tflite: the fixed batch size (default 1). jax: '
                       'not allowed (the batch size is symbolic).')
  flags.DEFINE_string('quantize', None, f'tflite only: {", ".join(QUANTIZE)} (default none).')
  flags.DEFINE_string('calibration', None, 'tflite --quantize=int8: a folder of images to '
                      'calibrate on (default: the eval split of the config\'s data set).')
  flags.DEFINE_integer('calibration_images', 64, 'tflite --quantize=int8: images to '
                       'calibrate on.')
  flags.mark_flags_as_required(['workdir', 'output'])
  cli.define_verbose()


def sidecar_path(path: str) -> str:
  return path + '.json'


def project_version() -> str:
  return ssd_jax.__version__


def input_spec(config, input_size: int, batch_size: int | None) -> dict:
  """What an export takes; a loader checks it against the sidecar of the file it loads."""
  return {'shape': [batch_size, input_size, input_size, 3], 'dtype': 'uint8',
          'pixel_format': 'RGB',
          'resize': 'bilinear warp to the input size, no aspect preservation (by the caller)',
          'normalization': '(pixels - mean_rgb) / std_rgb, inside the export',
          'mean_rgb': [float(v) for v in config.input.mean_rgb],
          'std_rgb': [float(v) for v in config.input.std_rgb]}


def sidecar(config, *, fmt: str, output: str, input_size: int, batch_size, workdir: str,
            step: int, extra: dict | None = None) -> dict:
  """The JSON written beside an export."""
  e = config.eval
  return {
      'ssd_jax_export': SIDECAR_FORMAT,
      'project_version': project_version(),
      'format': fmt,
      'file': os.path.basename(output),
      'input': input_spec(config, input_size, batch_size),
      'outputs': {
          'detection_boxes': '[B, K, 4] float32: ymin, xmin, ymax, xmax in pixels of the input',
          'detection_classes': '[B, K] int32: index into class_names',
          'detection_scores': '[B, K] float32, descending',
          'num_detections': '[B] int32: rows of each image that hold detections'},
      'box_format': 'yxyx_input_pixels',
      'max_detections': int(e.max_detections),
      'class_names': list(config.input.class_names),
      'score_threshold': float(e.score_threshold),
      'nms': {'iou_threshold': float(e.nms_iou), 'per_class': True,
              'pre_nms_top_k': int(e.pre_nms_top_k), 'clip_boxes': bool(e.clip_boxes),
              'max_size_offset': e.max_size_offset},
      'eval_scales': None if e.scales is None else [list(s) for s in e.scales],
      'source': {'workdir': os.path.abspath(workdir), 'step': int(step)},
      **(extra or {}),
  }


def export_fn(config, apply_fn, variables, priors, input_size: int):
  """uint8 images [B, S, S, 3] -> the four outputs: the eval step with normalization in front
  and pixel boxes, 0-based classes and a count behind."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from ssd_jax import train  # pylint: disable=g-import-not-at-top
  step = train.eval_step_fn(config, apply_fn, priors)
  mean = np.asarray(config.input.mean_rgb, np.float32)
  std = np.asarray(config.input.std_rgb, np.float32)

  def fn(images):
    x = (images.astype(jnp.float32) - mean) / std
    d = step(variables, {'image': x})
    return {'detection_boxes': d['boxes'] * jnp.float32(input_size),
            'detection_classes': jnp.maximum(d['classes'] - 1, 0).astype(jnp.int32),
            'detection_scores': d['scores'],
            'num_detections': jnp.sum(d['valid'], axis=1, dtype=jnp.int32)}

  return fn


def export_jax(fn, input_size: int, platforms=('cpu', 'cuda')) -> bytes:
  """The serialized `jax.export` of `fn` with a symbolic batch size."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax import export  # pylint: disable=g-import-not-at-top
  batch, = export.symbolic_shape('b')
  exported = export.export(jax.jit(fn), platforms=platforms)(
      jax.ShapeDtypeStruct((batch, input_size, input_size, 3), np.uint8))
  return bytes(exported.serialize())


def check_flags(workdir: str, output: str, fmt: str, batch_size, quantize, calibration):
  """Raises UserError for bad flags, before any work."""
  from ssd_jax import file_io  # pylint: disable=g-import-not-at-top
  if fmt not in FORMATS:
    raise errors.UserError(f'--format={fmt}: unknown; give one of {", ".join(FORMATS)}.')
  if fmt == 'jax':
    for name, value in (('quantize', quantize), ('batch_size', batch_size),
                        ('calibration', calibration)):
      if value is not None:
        raise errors.UserError(f'--{name} applies to --format=tflite only (a jax export is '
                               'float32 with a symbolic batch size).')
  else:
    if quantize is not None and quantize not in QUANTIZE:
      raise errors.UserError(f'--quantize={quantize}: unknown; give one of '
                             f'{", ".join(QUANTIZE)}.')
    if batch_size is not None and batch_size < 1:
      raise errors.UserError(f'--batch_size={batch_size}; it must be at least 1.')
    if calibration is not None and quantize != 'int8':
      raise errors.UserError('--calibration applies to --quantize=int8 only.')
    if calibration is not None and not os.path.isdir(calibration):
      raise errors.UserError(f'--calibration={calibration}: no such folder.')
  out = os.path.realpath(output)
  work = os.path.realpath(workdir)
  if out == work or out.startswith(work + os.sep):
    raise errors.UserError(f'--output={output} is inside --workdir={workdir}; write the '
                           'export elsewhere.')
  if calibration and os.path.realpath(calibration) in (out, os.path.dirname(out)):
    raise errors.UserError(f'--output={output} is (in) the --calibration folder.')
  for path in (output, sidecar_path(output)):
    if os.path.lexists(path):
      raise errors.UserError(f'{path} exists; give a new --output.')
  file_io.check_writable(output, '--output', folder=False)


def export_files(workdir: str, output: str, *, step=None, fmt='jax', batch_size=None,
                 quantize=None, calibration=None, calibration_images=64) -> dict:
  """Writes the export and its sidecar (both or neither); returns the sidecar."""
  from ssd_jax import detect  # pylint: disable=g-import-not-at-top
  from ssd_jax import file_io  # pylint: disable=g-import-not-at-top
  check_flags(workdir, output, fmt, batch_size, quantize, calibration)
  detector = detect.Detector(workdir, step)
  config, size = detector.config, detector.input_size
  if fmt == 'jax':
    data = export_jax(
        export_fn(config, detector.apply_fn, detector.variables, detector.priors, size), size)
    meta = sidecar(config, fmt=fmt, output=output, input_size=size, batch_size=None,
                   workdir=workdir, step=detector.step,
                   extra={'platforms': ['cpu', 'cuda']})
  else:
    from ssd_jax import export_tflite  # pylint: disable=g-import-not-at-top
    batch_size = batch_size or 1
    quantize = quantize or 'none'
    data, extra = export_tflite.convert(detector, batch_size, quantize, calibration,
                                        calibration_images)
    meta = sidecar(config, fmt=fmt, output=output, input_size=size, batch_size=batch_size,
                   workdir=workdir, step=detector.step,
                   extra={'quantize': quantize, **extra})
  file_io.write_atomically(output, lambda f: f.write(data))
  try:
    file_io.write_text(sidecar_path(output), json.dumps(meta, indent=1) + '\n')
  except BaseException:
    os.remove(output)
    raise
  report.note(f'Exported step {detector.step} of {workdir} as {fmt} to {output} '
              f'({len(data) / 2**20:.1f} MiB) and {sidecar_path(output)}.')
  return meta


# --- Loading (what `ssd_jax.detect --model` runs) ---------------------------------------------


def load_sidecar(path: str) -> dict:
  """The sidecar of the export at `path`, checked against this version of the project."""
  from ssd_jax import file_io  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise errors.UserError(f'--model={path}: no such file.')
  meta_path = sidecar_path(path)
  if not os.path.isfile(meta_path):
    raise errors.UserError(f'--model={path}: no {meta_path} beside it; give a file written '
                           'by `python -m ssd_jax.export`.')
  meta = file_io.read_json(meta_path, 'the export sidecar')
  if not isinstance(meta, dict) or meta.get('ssd_jax_export') != SIDECAR_FORMAT:
    raise errors.UserError(f'{meta_path}: not an ssd_jax export sidecar of format '
                           f'{SIDECAR_FORMAT}.')
  if meta.get('project_version') != project_version():
    raise errors.UserError(f'{meta_path}: made by ssd_jax {meta.get("project_version")}, '
                           f'this is {project_version()}; export the workdir again.')
  spec = meta.get('input', {})
  shape = spec.get('shape')
  if (spec.get('dtype') != 'uint8' or spec.get('pixel_format') != 'RGB' or
      not isinstance(shape, list) or len(shape) != 4 or shape[3] != 3 or
      shape[1] != shape[2] or not isinstance(shape[1], int)):
    raise errors.UserError(f'{meta_path}: input spec {spec.get("dtype")} '
                           f'{spec.get("pixel_format")} {shape} is not one this version '
                           'reads (uint8 RGB [B, S, S, 3]).')
  if meta.get('format') not in FORMATS or meta.get('box_format') != 'yxyx_input_pixels':
    raise errors.UserError(f'{meta_path}: format {meta.get("format")} / box format '
                           f'{meta.get("box_format")} is not one this version reads.')
  return meta


class ExportedDetector:
  """An export as `detect.Detector`: same preprocessing, same detections dict."""

  devices = 1

  def __init__(self, path: str):
    self.meta = meta = load_sidecar(path)
    self.class_names = tuple(meta['class_names'])
    self.step = meta['source']['step']
    self.input_size = meta['input']['shape'][1]
    self.fixed_batch = meta['input']['shape'][0]
    if meta['format'] == 'jax':
      import jax  # pylint: disable=g-import-not-at-top
      with open(path, 'rb') as f:
        data = f.read()
      try:
        exported = jax.export.deserialize(bytearray(data))
      except Exception as e:  # pylint: disable=broad-except
        raise errors.UserError(f'--model={path}: not a jax export ({errors.one_line(e)}).')
      self._run = lambda x: {k: np.asarray(v) for k, v in exported.call(x).items()}
    else:
      from ssd_jax import export_tflite  # pylint: disable=g-import-not-at-top
      self._run = export_tflite.Runner(path, meta)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], 'GPU')
    size = self.input_size
    self._resize = tf.function(
        lambda image: tf.image.resize(image, [size, size], method='bilinear'),
        input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])

  def preprocess(self, pixels: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [S, S, 3], resized as evaluation resizes (then rounded)."""
    if pixels.shape[:2] == (self.input_size,) * 2:
      return pixels
    resized = self._resize(pixels.astype(np.float32)).numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)

  def __call__(self, images: list[np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Detections as `detect.Detector` gives them (normalized yxyx, 1-based classes)."""
    size = self.input_size
    batch = np.zeros((self.fixed_batch or batch_size, size, size, 3), np.uint8)
    for i, pixels in enumerate(images):
      batch[i] = self.preprocess(pixels)
    out = self._run(batch)
    k = out['detection_scores'].shape[1]
    valid = np.arange(k)[None] < out['num_detections'][:, None]
    return {'boxes': out['detection_boxes'][:len(images)] / size,
            'scores': out['detection_scores'][:len(images)],
            'classes': out['detection_classes'][:len(images)].astype(np.int32) + 1,
            'valid': valid[:len(images)]}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  quiet.libraries()
  quiet.import_tensorflow()
  errors.run_command(PROG, lambda: export_files(
      FLAGS.workdir, FLAGS.output, step=FLAGS.step, fmt=FLAGS.format,
      batch_size=FLAGS.batch_size, quantize=FLAGS.quantize, calibration=FLAGS.calibration,
      calibration_images=FLAGS.calibration_images))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
