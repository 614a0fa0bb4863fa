"""--format=tflite: jax2tf -> SavedModel -> TFLiteConverter, and the LiteRT runner.

Batch 1 (and no `eval.clip_boxes`): one file with the model and the NMS inside as the TF Object
Detection API's `TFLite_Detection_PostProcess` op, returning the four outputs of every export.
The TF OD API gets that op from a `tf.function(experimental_implements=...)` placeholder that
the converter fuses; TF 2.21's converter does that for a plain-TF graph but not once the graph
holds jax2tf's `XlaCallModule` (the placeholder is inlined and its constants come out;
reproduced with a one-matmul JAX function), and JAX's own NMS (`lax.top_k`) does not load in
TF 2.21 ("unregistered operation 'vhlo.composite_v2'") without patching a JAX private. So the
model (uint8 images -> box offsets, class scores with background) and the op (from a plain-TF
graph, anchors inside in input pixels) are converted apart and the op's graph is appended to
the model's with the public flatbuffer API of `tensorflow.lite.tools` (`_append`).

Batch > 1 (the op reads batch 1 only) or clipped boxes: the file ends with `raw_boxes`
[B, P, 4] (decoded yxyx in input pixels) and `raw_scores` [B, P, C] (softmax, background
dropped), and the eval step's per-class NMS runs after it in numpy (`detections`), with the
sidecar's settings.
"""

import contextlib
import os
import tempfile

import numpy as np

from ssd_jax import errors
from ssd_jax.data import info

RUNTIME_HINT = 'pip install -r requirements-export.txt (the LiteRT runtime, ai-edge-litert)'


def _eval_priors(detector):
  """The default boxes [P, 4] (cyxhw, normalized) and scales of the eval step."""
  multiscale = detector.priors.eval_scales
  if multiscale is not None:
    return np.asarray(multiscale.boxes, np.float32), multiscale.scales
  return np.asarray(detector.priors.boxes, np.float32), None


def _l2norm_without_division(next_fun, args, kwargs, context):
  """A flax method interceptor: every `vgg.L2Norm` runs as its `rsqrt_form`."""
  from ssd_jax.models import vgg  # pylint: disable=g-import-not-at-top
  if isinstance(context.module, vgg.L2Norm) and context.method_name == '__call__':
    return context.module.rsqrt_form(*args, **kwargs)
  return next_fun(*args, **kwargs)


def _heads_fn(detector, encoded: bool, int8: bool = False):
  """uint8 images -> (decoded pixel boxes [B, P, 4], class scores [B, P, C]), or with
  `encoded` what TFLite_Detection_PostProcess takes: (offsets [B, P, 4], scores with the
  background column [B, P, C + 1]). `int8`: L2Norm without division (`vgg.L2Norm.
  rsqrt_form`), which int8 TFLite needs."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from ssd_jax import box_ops  # pylint: disable=g-import-not-at-top
  from ssd_jax import train  # pylint: disable=g-import-not-at-top
  config, size = detector.config, detector.input_size
  priors, scales = _eval_priors(detector)
  variances = np.asarray(config.loss.variances, np.float32)
  mean = np.asarray(config.input.mean_rgb, np.float32)
  std = np.asarray(config.input.std_rgb, np.float32)
  variables = detector.variables

  def fn(images):
    x = (images.astype(jnp.float32) - mean) / std
    with (nn.intercept_methods(_l2norm_without_division) if int8 else
          contextlib.nullcontext()):
      loc, conf = train.eval_heads(variables, x, detector.apply_fn, scales)
    if encoded:
      if config.eval.max_size_offset is not None:  # The bound box_ops.decode applies.
        bound = config.eval.max_size_offset / variances[2:]
        loc = jnp.concatenate([loc[..., :2], jnp.minimum(loc[..., 2:], bound)], axis=-1)
      return {'box_encodings': loc,
              'class_predictions': jax.nn.softmax(conf.astype(jnp.float32), axis=-1)}
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


def _eval_split_images(config, size: int, count: int):
  """The first `count` images of the config's eval split as an export takes them: the eval
  pipeline's resize to `size`, normalization undone, rounded to uint8."""
  import copy  # pylint: disable=g-import-not-at-top
  from ssd_jax.data import sources  # pylint: disable=g-import-not-at-top
  missing = sources.missing_data(config, training=False)
  if missing:
    raise errors.UserError(f'--quantize=int8 calibrates on the eval split, which is not here '
                           f'({missing}); give --calibration=<folder of images>.')
  config = copy.deepcopy(config)
  config.eval.num_images = count
  mean = np.asarray(config.input.mean_rgb, np.float32)
  std = np.asarray(config.input.std_rgb, np.float32)
  images = []
  for batch in sources.eval_batches(config, process_index=0, process_count=1):
    for image, real in zip(batch['image'], batch['example_mask']):
      if real and len(images) < count:
        if image.shape[:2] != (size, size):
          raise ValueError(f'eval images are {image.shape}, the export takes {size} px.')
        images.append(np.clip(np.round(image * std + mean), 0, 255).astype(np.uint8))
  if not images:
    raise errors.UserError(f'--quantize=int8: the eval split of {config.input.dataset} has no '
                           'image to calibrate on; give --calibration=<folder of images>.')
  return images


def _implements_signature(meta_nms: dict, num_classes: int, variances) -> str:
  """The TF OD API's `experimental_implements` string for TFLite_Detection_PostProcess."""
  attrs = [('max_detections', 'i', meta_nms['max_detections']),
           ('max_classes_per_detection', 'i', 1),
           ('use_regular_nms', 'b', 'true'),  # Per-class NMS, as the eval step.
           ('nms_score_threshold', 'f', meta_nms['score_threshold']),
           ('nms_iou_threshold', 'f', meta_nms['iou_threshold']),
           ('y_scale', 'f', 1 / variances[0]), ('x_scale', 'f', 1 / variances[1]),
           ('h_scale', 'f', 1 / variances[2]), ('w_scale', 'f', 1 / variances[3]),
           ('num_classes', 'i', num_classes)]
  return ' '.join(['name: "TFLite_Detection_PostProcess"'] + [
      f'attr {{ key: "{k}" value {{ {t}: {v if t != "f" else repr(float(v))} }} }}'
      for k, t, v in attrs])


def _postprocess_model(anchors_px: np.ndarray, num_classes: int, signature: str) -> bytes:
  """A .tflite of the TFLite_Detection_PostProcess op alone (plain TF: the converter fuses
  the composite function), anchors [P, 4] cyxhw in input pixels held inside."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  num = len(anchors_px)

  @tf.function(experimental_implements=signature)
  def postprocess(box_encodings, class_predictions, anchors):  # pylint: disable=unused-argument
    # A placeholder body: the converter replaces the call by the op.
    zero = tf.constant(0.0, tf.float32)
    return zero, zero, zero, zero

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([1, num, 4], tf.float32), tf.TensorSpec([1, num, num_classes + 1],
                                                            tf.float32)])
  def serve(box_encodings, class_predictions):
    return postprocess(box_encodings, class_predictions, tf.constant(anchors_px))

  module = tf.Module()
  module.serve = serve
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [serve.get_concrete_function()], module)
  converter.allow_custom_ops = True
  return converter.convert()


def _append(model_a: bytes, model_b: bytes, outputs_a: list[str], names_b: list[str],
            custom_options: dict | None = None) -> bytes:
  """Model A with model B's graph appended: A's signature outputs `outputs_a` feed B's
  signature inputs of the same names; the result's outputs are B's operator outputs, named `names_b`. Uses the public
  flatbuffer object API of tensorflow.lite.tools (no private JAX or TF code).
  `custom_options` are added to the custom op's options (flexbuffer map): the converter drops
  attributes it does not know from the implements signature, such as detections_per_class."""
  from flatbuffers import flexbuffers  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  a = flatbuffer_utils.read_model_from_bytearray(bytearray(model_a))
  b = flatbuffer_utils.read_model_from_bytearray(bytearray(model_b))
  if len(a.subgraphs) != 1 or len(b.subgraphs) != 1 or len(a.signatureDefs) != 1:
    raise ValueError('expected single-subgraph models with one signature')
  graph_a, graph_b = a.subgraphs[0], b.subgraphs[0]
  def names(maps):
    return {(m.name.decode() if isinstance(m.name, bytes) else m.name): m.tensorIndex
            for m in maps}
  out_a, in_b = names(a.signatureDefs[0].outputs), names(b.signatureDefs[0].inputs)
  feed = {in_b[n]: out_a[n] for n in outputs_a}  # B's inputs are named as A's outputs.
  buffer_offset = len(a.buffers)
  a.buffers += b.buffers
  opcodes = {}
  for i, code in enumerate(b.operatorCodes):
    key = (code.builtinCode, code.deprecatedBuiltinCode, code.customCode, code.version)
    match = [j for j, c in enumerate(a.operatorCodes)
             if (c.builtinCode, c.deprecatedBuiltinCode, c.customCode, c.version) == key]
    if not match:
      a.operatorCodes.append(code)
      match = [len(a.operatorCodes) - 1]
    opcodes[i] = match[0]
  tensor_map = {}
  for i, tensor in enumerate(graph_b.tensors):
    if i in feed:
      tensor_map[i] = feed[i]
      continue
    tensor.buffer += buffer_offset
    tensor_map[i] = len(graph_a.tensors)
    graph_a.tensors.append(tensor)
  for op in graph_b.operators:
    if b.operatorCodes[op.opcodeIndex].customCode and custom_options:
      options = flexbuffers.Loads(bytes(op.customOptions))
      options.update(custom_options)
      op.customOptions = list(flexbuffers.Dumps(options))
    op.opcodeIndex = opcodes[op.opcodeIndex]
    op.inputs = [tensor_map[t] if t >= 0 else t for t in op.inputs]
    op.outputs = [tensor_map[t] for t in op.outputs]
    graph_a.operators.append(op)
  outputs = [tensor_map[t] for t in graph_b.outputs]
  custom = [op for op in graph_b.operators if op.outputs and len(op.outputs) == len(names_b)]
  if len(custom) == 1:  # The op's own output order (boxes, classes, scores, count).
    outputs = list(custom[0].outputs)
  graph_a.outputs = outputs
  signature = a.signatureDefs[0]
  signature.outputs = []
  for name, index in zip(names_b, outputs):
    tensor_map_t = schema.TensorMapT()
    tensor_map_t.name, tensor_map_t.tensorIndex = name, index
    signature.outputs.append(tensor_map_t)
    graph_a.tensors[index].name = name
  return bytes(flatbuffer_utils.convert_object_to_bytearray(a))


def convert(detector, batch_size: int, quantize: str, calibration, calibration_images):
  """The .tflite bytes and the sidecar's extra keys."""
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  size = detector.input_size
  config = detector.config
  calib = calib_source = None
  if quantize == 'int8':
    if calibration is None:
      calib = _eval_split_images(config, size, calibration_images)
      default = info.DEFAULT_SPLITS.get(config.input.dataset, ('', ''))[1]
      split = f'{config.input.dataset} {config.input.eval_split or default}'
      calib_source = {'eval_split': split.strip()}
    else:
      calib = _calibration_images(calibration, size, calibration_images)
      calib_source = {'folder': os.path.abspath(calibration)}
    calib_source['images'] = len(calib)
  # TFLite_Detection_PostProcess reads batch 1 only and does not clip boxes.
  nms_inside = batch_size == 1 and not config.eval.clip_boxes
  tf_fn = jax2tf.convert(_heads_fn(detector, encoded=nms_inside, int8=quantize == 'int8'),
                         with_gradient=False)
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
  if nms_inside:
    priors, _ = _eval_priors(detector)
    nms = {'max_detections': config.eval.max_detections,
           'pre_nms_top_k': config.eval.pre_nms_top_k,
           'score_threshold': config.eval.score_threshold, 'iou_threshold': config.eval.nms_iou}
    post = _postprocess_model(priors * np.float32(size), len(config.input.class_names),
                              _implements_signature(nms, len(config.input.class_names),
                                                    tuple(config.loss.variances)))
    data = _append(data, post, ['box_encodings', 'class_predictions'],
                   ['detection_boxes', 'detection_classes', 'detection_scores',
                    'num_detections'],
                   custom_options={'detections_per_class': int(config.eval.pre_nms_top_k)})
    return data, {'batch_size': batch_size, 'nms_inside': 'TFLite_Detection_PostProcess',
                  **({'calibration': calib_source} if calib else {})}
  extra = {'batch_size': batch_size, 'nms_inside': False,
           'tflite_outputs': {'raw_boxes': '[B, P, 4] float32 decoded yxyx in input pixels',
                              'raw_scores': '[B, P, C] float32 softmax, background dropped'},
           'nms_outside': 'per class: top pre_nms_top_k with score > score_threshold, greedy '
                          'NMS at IoU > iou_threshold, then the best max_detections'}
  if calib:
    extra['calibration'] = calib_source
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
      suppressed = iou_matrix(boxes) > iou  # [k, k]
      alive = np.ones(len(order), bool)
      keep = []
      for i in range(len(order)):  # Greedy: a box survives unless a kept earlier one overlaps.
        if alive[i]:
          keep.append(i)
          alive &= ~suppressed[i]
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
      # Every core this process may use (LiteRT's own default is implementation-defined).
      self.interpreter = interpreter.Interpreter(model_path=path,
                                                 num_threads=len(os.sched_getaffinity(0)))
      self.runner = self.interpreter.get_signature_runner()
    except (ValueError, RuntimeError) as e:
      raise errors.UserError(f'--model={path}: not a TFLite model LiteRT loads '
                             f'({errors.one_line(e)}).') from None
    self.meta = meta

  def raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
    return self.runner(images=images)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    if self.meta.get('nms_inside'):
      out = self.runner(images=images)
      return {'detection_boxes': out['detection_boxes'].astype(np.float32),
              'detection_classes': np.round(out['detection_classes']).astype(np.int32),
              'detection_scores': out['detection_scores'].astype(np.float32),
              'num_detections': np.round(out['num_detections']).astype(np.int32)}
    raw = self.raw(images)
    return detections(raw['raw_boxes'], raw['raw_scores'], self.meta)
