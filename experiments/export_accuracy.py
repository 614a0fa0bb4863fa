r"""VOC07 mAP of a trained shapes run through its exports, against the same run in JAX.

  python -m experiments.export_accuracy --workdir=workdir/shapes \
      --models=shapes.jax,shapes.tflite,shapes_dynamic.tflite [--num_images=500]

Reads the shapes validation split (prepared by the training run: tfds default data dir), and
scores each detector on the same uint8 images with the devkit rules
(`evaluation.voc.evaluate_voc`): first the workdir's checkpoint (`ssd_jax.detect.Detector`, the
eval step in JAX), then every export (`ssd_jax.export.ExportedDetector`, images resized as
evaluation resizes them and rounded to uint8, what an export takes). Prints one row per
detector: mAP, the difference to the JAX path, seconds. A last row feeds the JAX path the
first export's input (the images resized and rounded as the export takes them): where it equals
the exports, what separates them from the JAX path is their uint8 input, not their graph.
"""

import time

from absl import flags
import numpy as np

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'A trained shapes workdir.', required=True)
  flags.DEFINE_list('models', [], 'Exports of that workdir (ssd_jax.export outputs).')
  flags.DEFINE_integer('num_images', 500, 'Validation images to score (the first N).')
  flags.DEFINE_integer('batch_size', 8, 'Images per call (a .tflite file keeps its own).')


def validation_images(num_images: int):
  """The shapes validation split: uint8 images, devkit ground truth."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from ssd_jax.data import shapes  # pylint: disable=g-import-not-at-top
  from ssd_jax.evaluation import devkit  # pylint: disable=g-import-not-at-top
  from ssd_jax.evaluation import pixel_boxes  # pylint: disable=g-import-not-at-top
  builder = shapes.make_builder()
  images, image, label, boxes, difficult = [], [], [], [], []
  for i, ex in enumerate(tfds.as_numpy(builder.as_dataset(split='validation'))):
    if i == num_images:
      break
    pixels = ex['image']
    images.append(pixels)
    objects = ex['objects']
    n = len(objects['label'])
    image += [i] * n
    label += list(objects['label'] + 1)
    boxes.append(pixel_boxes.yxyx_to_devkit_xyxy(objects['bbox'].reshape(-1, 4),
                                                 np.array(pixels.shape[:2])))
    difficult += list(objects['is_difficult'])
  truth = devkit.VocGroundTruth(image=np.array(image), label=np.array(label),
                                boxes=np.concatenate(boxes).astype(np.float64),
                                difficult=np.array(difficult, bool))
  return images, truth


def score(detector, images, truth, batch_size: int) -> tuple[float, float]:
  """(VOC07 mAP, seconds) of `detector` (detect.Detector's call interface) on `images`."""
  from ssd_jax.evaluation import devkit  # pylint: disable=g-import-not-at-top
  from ssd_jax.evaluation import pixel_boxes  # pylint: disable=g-import-not-at-top
  from ssd_jax.evaluation import voc  # pylint: disable=g-import-not-at-top
  batch_size = getattr(detector, 'fixed_batch', None) or batch_size
  image, label, boxes, scores = [], [], [], []
  start = time.perf_counter()
  for first in range(0, len(images), batch_size):
    chunk = images[first:first + batch_size]
    out = detector(chunk, batch_size)
    for i, pixels in enumerate(chunk):
      keep = out['valid'][i]
      image += [first + i] * int(keep.sum())
      label += list(out['classes'][i][keep])
      scores += list(out['scores'][i][keep])
      boxes.append(pixel_boxes.yxyx_to_devkit_xyxy(out['boxes'][i][keep],
                                                   np.array(pixels.shape[:2])))
  seconds = time.perf_counter() - start
  detections = devkit.VocDetections(
      image=np.array(image, np.int64), label=np.array(label, np.int64),
      boxes=np.concatenate(boxes).astype(np.float64), scores=np.array(scores, np.float64))
  result = voc.evaluate_voc(truth, detections, detector.class_names)
  return float(result.metrics['mAP']), seconds


class OnExportInput:
  """`detector` fed the images as `export` takes them: resized to its input and rounded."""

  def __init__(self, detector, export):
    self.detector, self.export = detector, export
    self.class_names = detector.class_names

  def __call__(self, images, batch_size):
    return self.detector([self.export.preprocess(p) for p in images], batch_size)


def main(argv):
  del argv
  from ssd_jax import detect  # pylint: disable=g-import-not-at-top
  from ssd_jax import export  # pylint: disable=g-import-not-at-top
  from ssd_jax import quiet  # pylint: disable=g-import-not-at-top
  quiet.libraries()
  quiet.import_tensorflow()
  images, truth = validation_images(FLAGS.num_images)
  jax_path = detect.Detector(FLAGS.workdir)
  reference, seconds = score(jax_path, images, truth, FLAGS.batch_size)
  print(f'{len(images)} validation images, {len(truth.label)} objects', flush=True)
  print('| detector | VOC07 mAP | difference to JAX | seconds |\n|---|---|---|---|')
  print(f'| {FLAGS.workdir} (JAX) | {reference:.5f} | - | {seconds:.1f} |', flush=True)
  for path in FLAGS.models:
    m, seconds = score(export.ExportedDetector(path), images, truth, FLAGS.batch_size)
    print(f'| {path} | {m:.5f} | {m - reference:+.5f} | {seconds:.1f} |', flush=True)
  if FLAGS.models:
    first = export.ExportedDetector(FLAGS.models[0])
    m, seconds = score(OnExportInput(jax_path, first), images, truth, FLAGS.batch_size)
    print(f'| {FLAGS.workdir} (JAX) on the input of {FLAGS.models[0]} | {m:.5f} | '
          f'{m - reference:+.5f} | {seconds:.1f} |', flush=True)


if __name__ == '__main__':
  from ssd_jax import cli  # pylint: disable=g-import-not-at-top
  define_flags()
  cli.run(main)
