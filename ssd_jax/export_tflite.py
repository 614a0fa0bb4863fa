"""--format=tflite: jax2tf -> SavedModel -> TFLiteConverter, and the LiteRT runner.

The .tflite file holds the model and the box decoding for one batch size B: uint8 images
[B, S, S, 3] -> `raw_boxes` [B, P, 4] (decoded yxyx in input pixels, every default box) and
`raw_scores` [B, P, C] (softmax, background dropped). The per-class NMS runs after it, in
numpy (`detections`), with the sidecar's settings; it gives the four outputs of every export.

Why NMS is not inside as `TFLite_Detection_PostProcess`: the TF Object Detection API gets that
op from a `tf.function(experimental_implements=...)` that the converter fuses. TF 2.21's
converter fuses it in a plain TF graph, but not once the graph holds jax2tf's `XlaCallModule`
(the model): then the function is inlined and its placeholder body (constants) becomes the
output. Reproduced with a one-matmul JAX function. JAX's own NMS (`lax.top_k`) does not load
in TF 2.21 either ("unregistered operation 'vhlo.composite_v2'") without patching a JAX
private. See docs/export.md.
"""

import os
import tempfile

import numpy as np

from ssd_jax import errors

RUNTIME_HINT = 'pip install -r requirements-export.txt (the LiteRT runtime, ai-edge-litert)'


def check_converter() -> None:
  """Nothing to check: the converter comes with TensorFlow (a core requirement)."""


def _heads_fn(detector):
  """uint8 images -> (decoded pixel boxes [B, P, 4], class scores [B, P, C])."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from ssd_jax import anchors  # pylint: disable=g-import-not-at-top
  from ssd_jax import box_ops  # pylint: disable=g-import-not-at-top
  from ssd_jax import train  # pylint: disable=g-import-not-at-top
  config, size = detector.config, detector.input_size
  priors, scales = detector.priors, None
  if anchors.eval_scale_maps(config) is not None:
    multiscale = anchors.eval_scales(config)
    priors, scales = multiscale.boxes, multiscale.scales
  priors = np.asarray(priors, np.float32)
  mean = np.asarray(config.input.mean_rgb, np.float32)
  std = np.asarray(config.input.std_rgb, np.float32)
  variables = detector.variables

  def fn(images):
    x = (images.astype(jnp.float32) - mean) / std
    loc, conf = train.eval_heads(variables, x, detector.apply_fn, scales)
    boxes = box_ops.decode(loc, priors, tuple(config.loss.variances),
                           config.eval.max_size_offset)
    if config.eval.clip_boxes:
      boxes = jnp.clip(boxes, 0.0, 1.0)
    scores = jax.nn.softmax(conf.astype(jnp.float32), axis=-1)[..., 1:]
    return {'raw_boxes': boxes * jnp.float32(size), 'raw_scores': scores}

  return fn


def _calibration_images(folder: str, size: int, count: int):
  from ssd_jax import detect  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  images = []
  for path in detect.list_files([folder]):
    pixels = detect.read_image(path)
    if pixels is not None:
      resized = tf.image.resize(pixels.astype(np.float32), [size, size]).numpy()
      images.append(np.clip(np.round(resized), 0, 255).astype(np.uint8))
    if len(images) == count:
      break
  if not images:
    raise errors.UserError(f'--calibration={folder}: no readable image in it.')
  return images


def convert(detector, batch_size: int, quantize: str, calibration, calibration_images):
  """The .tflite bytes and the sidecar's extra keys."""
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  size = detector.input_size
  if quantize == 'int8' and calibration is None:
    raise errors.UserError('--quantize=int8 needs --calibration=<folder of images>.')
  calib = (_calibration_images(calibration, size, calibration_images)
           if quantize == 'int8' else None)
  tf_fn = jax2tf.convert(_heads_fn(detector), with_gradient=False)
  module = tf.Module()
  module.serve = tf.function(
      tf_fn, autograph=False,
      input_signature=[tf.TensorSpec([batch_size, size, size, 3], tf.uint8, name='images')])
  with tempfile.TemporaryDirectory() as tmp:
    saved = os.path.join(tmp, 'saved_model')
    tf.saved_model.save(module, saved,
                        signatures={'serving_default': module.serve.get_concrete_function()})
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if quantize in ('dynamic', 'int8'):
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == 'int8':
      def representative():
        for i in range(0, len(calib), batch_size):
          chunk = calib[i:i + batch_size]
          chunk += [chunk[-1]] * (batch_size - len(chunk))
          yield {'images': np.stack(chunk)}
      converter.representative_dataset = representative
    data = converter.convert()
  extra = {'batch_size': batch_size, 'nms_inside': False,
           'tflite_outputs': {'raw_boxes': '[B, P, 4] float32 decoded yxyx in input pixels',
                              'raw_scores': '[B, P, C] float32 softmax, background dropped'},
           'nms_outside': 'per class: top pre_nms_top_k with score > score_threshold, greedy '
                          'NMS at IoU > iou_threshold, then the best max_detections'}
  if quantize == 'int8':
    extra['calibration'] = {'folder': os.path.abspath(calibration), 'images': len(calib)}
  return data, extra


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
  """Pairwise IoU of yxyx boxes [K, 4] (as `box_ops.pairwise_iou`)."""
  low = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
  high = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
  inter = np.prod(np.maximum(high - low, 0), axis=-1)
  area = np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 0), axis=-1)
  union = area[:, None] + area[None, :] - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def detections(raw_boxes, raw_scores, meta: dict) -> dict[str, np.ndarray]:
  """The export outputs from decoded boxes [B, P, 4] and scores [B, P, C]: the eval step's
  per-class NMS (`postprocess.detect`) in numpy."""
  k_max = meta['max_detections']
  threshold, iou = meta['score_threshold'], meta['nms']['iou_threshold']
  batch, _, num_classes = raw_scores.shape
  out = {'detection_boxes': np.zeros((batch, k_max, 4), np.float32),
         'detection_classes': np.zeros((batch, k_max), np.int32),
         'detection_scores': np.zeros((batch, k_max), np.float32),
         'num_detections': np.zeros((batch,), np.int32)}
  for b in range(batch):
    kept = []  # (score, class, box)
    for c in range(num_classes):
      scores = raw_scores[b, :, c]
      order = np.argsort(-scores, kind='stable')[:meta['nms']['pre_nms_top_k']]
      order = order[scores[order] > threshold]
      boxes = raw_boxes[b, order]
      ious = iou_matrix(boxes)
      keep = np.zeros(len(order), bool)
      for i in range(len(order)):
        keep[i] = not np.any(keep[:i] & (ious[i, :i] > iou))
      kept += [(scores[j], c, raw_boxes[b, j]) for j in order[keep]]
    kept.sort(key=lambda t: -t[0])  # Stable: ties keep class order, as lax.top_k does.
    kept = kept[:k_max]
    out['num_detections'][b] = len(kept)
    for i, (score, c, box) in enumerate(kept):
      out['detection_boxes'][b, i] = box
      out['detection_classes'][b, i] = c
      out['detection_scores'][b, i] = score
  return out


class Runner:
  """A .tflite export in LiteRT, NMS after it: uint8 batch -> the four outputs."""

  def __init__(self, path: str, meta: dict):
    try:
      from ai_edge_litert import interpreter  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise errors.UserError(f'--model={path} needs the LiteRT runtime: {RUNTIME_HINT}.'
                             ) from None
    try:
      self.interpreter = interpreter.Interpreter(model_path=path)
      self.runner = self.interpreter.get_signature_runner()
    except (ValueError, RuntimeError) as e:
      raise errors.UserError(f'--model={path}: not a TFLite model LiteRT loads '
                             f'({errors.one_line(e)}).') from None
    self.meta = meta

  def raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
    return self.runner(images=images)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    raw = self.raw(images)
    return detections(raw['raw_boxes'], raw['raw_scores'], self.meta)
