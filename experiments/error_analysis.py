r"""Where a trained detector's errors are (after Hoiem et al. 2012, "Diagnosing error in
object detectors"): AP at several IoU thresholds, class-agnostic AP, and what the false
positives among each class's top detections are.

  python -m experiments.error_analysis --workdir=<dir> [--step=N] [--output=<json>]

Restores a training workdir (or a converted one) as `ssd_jax.detect` does (its config.json,
the newest complete checkpoint, no lock, nothing written there) and scores its eval split once
(VOC rules, difficult objects ignored). It prints:
- VOC AP at IoU 0.3 / 0.5 / 0.7: how much of the shortfall is localization;
- class-agnostic AP at 0.5 (every label made one class): how much is class confusion;
- the top-N detections of each class, N = its objects that are not difficult (Hoiem et al.'s
  choice), by kind: correct; duplicate (IoU >= 0.5 with an object of its class that a
  higher-scored detection took); localization (IoU 0.1 .. 0.5 with an object of its class);
  other class (IoU >= 0.1 with an object of another class only); background (IoU < 0.1 with
  every object); ignored (matched to a difficult object, as VOC ignores it); and which classes
  the 'other class' ones are confused with.
"""

import dataclasses
import json

from absl import app
from absl import flags
import numpy as np

from ssd_jax import cli
from ssd_jax import errors
from ssd_jax import file_io
from ssd_jax import quiet
from ssd_jax.evaluation import devkit
from ssd_jax.evaluation import voc

KINDS = ('correct', 'duplicate', 'localization', 'other_class', 'background', 'ignored')
IOU_THRESHOLDS = (0.3, 0.5, 0.7)
NEAR_IOU = 0.1  # Below this overlap a detection is not "near" an object.
MAX_CONFUSIONS_SHOWN = 8


def _best_overlap(det_image, det_boxes, gt_image, gt_boxes):
  """Max devkit IoU of each detection with the given ground truth of its image (-1: none),
  and the index of that ground truth box (-1: none)."""
  best, which = np.full(len(det_image), -1.0), np.full(len(det_image), -1)
  for image in np.intersect1d(det_image, gt_image):
    d, g = det_image == image, np.flatnonzero(gt_image == image)
    iou = devkit.devkit_iou(det_boxes[d][:, None], gt_boxes[g][None])
    best[d], which[d] = iou.max(axis=1), g[iou.argmax(axis=1)]
  return best, which


def detection_kinds(ground_truth: devkit.VocGroundTruth, detections: devkit.VocDetections,
                    num_classes: int, iou_threshold: float = 0.5):
  """The kind of each detection (an index into KINDS) and, for kind 'other_class', the label
  of the object it overlaps most (else 0); both in the order of `detections`.

  Correct, ignored and duplicate detections are those of the devkit's matching
  (`devkit.match_class`); a false positive is a duplicate if it overlaps an object of its class
  by >= iou_threshold, else localization if by >= NEAR_IOU, else other class if it overlaps
  an object of another class by >= NEAR_IOU, else background.
  """
  gt_label, gt_image = np.asarray(ground_truth.label), np.asarray(ground_truth.image)
  gt_boxes = np.asarray(ground_truth.boxes, np.float64)
  det_label, det_image = np.asarray(detections.label), np.asarray(detections.image)
  det_boxes = np.asarray(detections.boxes, np.float64)
  scores = np.asarray(detections.scores, np.float64)
  kinds, confused_with = np.empty(len(det_label), np.int64), np.zeros(len(det_label), np.int64)
  for label in range(1, num_classes + 1):
    in_det = np.flatnonzero(det_label == label)
    in_gt = gt_label == label
    tp, fp = devkit.match_class(det_image[in_det], det_boxes[in_det], scores[in_det],
                                gt_image[in_gt], gt_boxes[in_gt],
                                np.asarray(ground_truth.difficult, bool)[in_gt], iou_threshold)
    in_det = in_det[np.argsort(-scores[in_det], kind='stable')]  # match_class's order.
    same, _ = _best_overlap(det_image[in_det], det_boxes[in_det], gt_image[in_gt],
                            gt_boxes[in_gt])
    other, which = _best_overlap(det_image[in_det], det_boxes[in_det], gt_image[~in_gt],
                                 gt_boxes[~in_gt])
    kind = np.select(
        [tp == 1, fp == 0, same >= iou_threshold, same >= NEAR_IOU, other >= NEAR_IOU],
        [KINDS.index(k) for k in ('correct', 'ignored', 'duplicate', 'localization',
                                  'other_class')], KINDS.index('background'))
    kinds[in_det] = kind
    confused = kind == KINDS.index('other_class')  # So `which` is a box there.
    confused_with[in_det[confused]] = gt_label[~in_gt][which[confused]]
  return kinds, confused_with


def top_detections(ground_truth: devkit.VocGroundTruth, detections: devkit.VocDetections,
                   class_names, iou_threshold: float = 0.5):
  """Among each class's top-N detections (N = its non-difficult objects): the count of each
  of KINDS, and the 'other_class' ones as [detected class, object's class, count] rows, most
  frequent first."""
  num_classes = len(class_names)
  kinds, confused_with = detection_kinds(ground_truth, detections, num_classes, iou_threshold)
  det_label = np.asarray(detections.label)
  scores = np.asarray(detections.scores, np.float64)
  counts = np.zeros(len(KINDS), np.int64)
  pairs = np.zeros((num_classes + 1, num_classes + 1), np.int64)
  for label in range(1, num_classes + 1):
    num_objects = int(np.sum((np.asarray(ground_truth.label) == label)
                             & ~np.asarray(ground_truth.difficult, bool)))
    in_det = np.flatnonzero(det_label == label)
    top = in_det[np.argsort(-scores[in_det], kind='stable')][:num_objects]
    counts += np.bincount(kinds[top], minlength=len(KINDS))
    pairs[label] += np.bincount(confused_with[top], minlength=num_classes + 1)
  pairs[:, 0] = 0
  rows = [[class_names[d - 1], class_names[o - 1], int(pairs[d, o])]
          for d, o in zip(*np.nonzero(pairs))]
  return dict(zip(KINDS, counts.tolist())), sorted(rows, key=lambda r: -r[2])


def class_agnostic(ground_truth: devkit.VocGroundTruth, detections: devkit.VocDetections):
  """The same ground truth and detections with every label set to 1."""
  return (dataclasses.replace(ground_truth, label=np.ones_like(ground_truth.label)),
          dataclasses.replace(detections, label=np.ones_like(detections.label)))


def analyse(ground_truth: devkit.VocGroundTruth, detections: devkit.VocDetections,
            class_names, use_07_metric: bool = True) -> dict:
  """{'mAP@<t>': .., 'class_agnostic_AP@0.5': .., 'num_objects': .., 'top_detections': {..},
  'confusions': [[detected, object, count], ..]}."""
  result = {f'mAP@{t:g}': voc.evaluate_voc(ground_truth, detections, class_names,
                                           use_07_metric, t).metrics['mAP']
            for t in IOU_THRESHOLDS}
  result['class_agnostic_AP@0.5'] = voc.evaluate_voc(
      *class_agnostic(ground_truth, detections), ('object',), use_07_metric).metrics['mAP']
  result['num_objects'] = int((~np.asarray(ground_truth.difficult, bool)).sum())
  result['top_detections'], result['confusions'] = top_detections(ground_truth, detections,
                                                                 tuple(class_names))
  return result


def format_report(result: dict) -> str:
  lines = ['VOC AP at IoU ' + ' / '.join(f'{t:g}' for t in IOU_THRESHOLDS) + ': '
           + ' / '.join(f"{result[f'mAP@{t:g}']:.3f}" for t in IOU_THRESHOLDS),
           f"class-agnostic AP at IoU 0.5: {result['class_agnostic_AP@0.5']:.3f}",
           f"each class's top-N detections, N = its objects ({result['num_objects']} in all):"]
  total = max(sum(result['top_detections'].values()), 1)
  for kind, count in result['top_detections'].items():
    lines.append(f'  {kind:<13} {count:6d}  {100 * count / total:5.1f}%')
  if result['confusions']:
    lines.append('most frequent other_class (detected as -> object of): ' + ', '.join(
        f'{d} -> {o} {n}' for d, o, n in result['confusions'][:MAX_CONFUSIONS_SHOWN]))
  return '\n'.join(lines)


def score_workdir(workdir: str, step: int | None = None):
  """(config, VocGroundTruth, VocDetections) of a workdir's checkpoint on its eval split."""
  from ssd_jax import detect  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
  from ssd_jax import evaluation  # pylint: disable=g-import-not-at-top
  from ssd_jax import train  # pylint: disable=g-import-not-at-top
  from ssd_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  detector = detect.Detector(workdir, step)
  config = detector.config
  if config.eval.metric not in ('voc07', 'voc'):
    raise errors.UserError(f'--workdir={workdir}: eval.metric={config.eval.metric!r}; this '
                           "analysis follows the VOC rules ('voc07' or 'voc').")
  evaluator = evaluation.VocEvaluator(config.input.class_names)
  train.score_split(config, detector.variables, detector.eval_fn, train.make_mesh(),
                    input_pipeline.get_dataset_info(config), evaluator=evaluator)
  return config, evaluator.ground_truth(), evaluator.detections()


def run(workdir: str, step: int | None = None, output: str | None = None) -> dict:
  if output:
    file_io.check_writable(output, '--output', folder=False)
  config, ground_truth, detections = score_workdir(workdir, step)
  result = analyse(ground_truth, detections, config.input.class_names,
                   config.eval.metric == 'voc07')
  print(format_report(result))
  if output:
    file_io.write_text(output, json.dumps(result, indent=1) + '\n')
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  quiet.libraries()
  quiet.import_tensorflow()
  errors.run_command('error_analysis', lambda: run(FLAGS.workdir, FLAGS.step, FLAGS.output))


FLAGS = flags.FLAGS

if __name__ == '__main__':
  flags.DEFINE_string('workdir', None, 'Training (or converted) workdir.', required=True)
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: the newest).')
  flags.DEFINE_string('output', None, 'Also write the figures to this JSON file.')
  cli.define_verbose()
  cli.run(main)
