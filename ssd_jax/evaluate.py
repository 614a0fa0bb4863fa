r"""Command line: score a detections file.

  python -m ssd_jax.evaluate --ground_truth=VOCdevkit/VOC2007 --detections=dets.json \
      --metric=voc07 [--split=test] [--output=metrics.json] [--plots=plots/]
  python -m ssd_jax.evaluate --ground_truth=instances_val2017.json --detections=dets.json \
      --metric=coco

Prints the per-class table and the summary; see docs/evaluation.md for the file format. What
the user must fix (bad files or flags, an unwritable output) ends the command with exit code 1
and one line `ssd_jax.evaluate: error: ...`; `--verbose` or SSD_JAX_TRACEBACK=1 shows the
traceback instead.
"""

import json

from absl import app
from absl import flags

from ssd_jax import cli
from ssd_jax import errors
from ssd_jax import evaluation
from ssd_jax import file_io
from ssd_jax import quiet

FLAGS = flags.FLAGS
PROG = 'ssd_jax.evaluate'
flags.DEFINE_string('ground_truth', None,
                    'VOC devkit year folder (e.g. VOCdevkit/VOC2007) or COCO instances json.')
flags.DEFINE_string('detections', None, 'Detections json (COCO results format).')
flags.DEFINE_enum('metric', 'voc07', ['voc07', 'voc', 'coco'],
                  'voc07: VOC2007 11-point AP; voc: VOC2010+ area AP; coco: COCOeval.')
flags.DEFINE_string('split', 'test', 'VOC image set: ImageSets/Main/<split>.txt.')
flags.DEFINE_list('class_names', None, 'VOC class names in label order (default: the 20 VOC '
                  'classes).')
flags.DEFINE_string('output', None, 'Write the metrics as JSON to this file.')
flags.DEFINE_string('plots', None, 'Write per-class precision/recall PNGs to this folder.')
flags.mark_flags_as_required(['ground_truth', 'detections'])
cli.define_verbose()


def evaluate_and_write() -> None:
  """Checks the outputs can be written, scores, prints, then writes --output and --plots."""
  file_io.check_not_inputs(
      [('--output', FLAGS.output, None), ('--plots', FLAGS.plots, ('pr_*.png',))],
      [('--ground_truth', FLAGS.ground_truth), ('--detections', FLAGS.detections)])
  if FLAGS.output:
    file_io.check_writable(FLAGS.output, '--output', folder=False)
  if FLAGS.plots:
    file_io.check_writable(FLAGS.plots, '--plots', folder=True)
  result = evaluation.evaluate_files(FLAGS.ground_truth, FLAGS.detections,
                                     FLAGS.metric, FLAGS.split, FLAGS.class_names)
  evaluation.print_table(result.metrics, result.class_names,
                         num_ground_truth=result.num_ground_truth,
                         num_detections=result.num_detections)
  if result.summary:
    print(result.summary, end='')
  if FLAGS.output:
    text = json.dumps(evaluation.to_json_dict(
        result, metric=FLAGS.metric, ground_truth=FLAGS.ground_truth,
        detections=FLAGS.detections, split=FLAGS.split), indent=1) + '\n'
    file_io.write_text(FLAGS.output, text)
  if FLAGS.plots:
    from ssd_jax.evaluation import plots  # pylint: disable=g-import-not-at-top
    plots.save_pr_curves(result, FLAGS.plots)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  quiet.libraries()
  errors.run_command(PROG, evaluate_and_write)


if __name__ == '__main__':
  cli.run(main)
