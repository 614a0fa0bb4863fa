r"""Command line: run a trained (or converted) detector on image files.

  python -m ssd_jax.detect --workdir=<dir> [--step=N] <images or folders...> \
      --output=dets.json [--draw=<folder>] [--score_threshold=0.3] [--batch_size=8]
  python -m ssd_jax.detect --model=<file from ssd_jax.export> <images...> --output=dets.json

With --model, the export runs instead of the checkpoint (docs/export.md): images are resized
as evaluation resizes them, rounded to uint8 (what an export takes), and the results and
drawings are made as with a workdir.

Restores the checkpoint (default: the latest) with the workdir's saved config.json, and runs
the evaluation path on every image: the eval preprocessing (resize to the model's input,
normalize), one jitted forward + postprocessing per batch, the config's eval thresholds. The
output is a COCO results list in original-image pixels: per detection `image` (the file's
stem), `image_id` (unique in the run: the stem, an integer if all digits: COCO's file names
are their ids, so `ssd_jax.evaluate --metric=coco` scores the file; for files that share a
stem, their path from the folder holding all files: `x/1`, `y/1`), `file_name` (the path),
`category_id` (the model's label, numbered as the config's class list), `category` (its
name), `bbox` [x, y, width, height] clipped to the image and `score`, for scores >=
--score_threshold. JPEG, PNG (and whatever else Pillow reads) of any size, read as
displayed (EXIF orientation applied, 16-bit scaled to 8 bits: `image_files`), greyscale or
RGBA (alpha dropped). Files in a folder that are not images
are skipped, named and counted; if none can be read the command fails. --draw writes each
image with its boxes to a new folder. Outputs appear only when complete. One process (single
host). Takes no workdir lock: it reads the newest complete step, which orbax makes atomically,
and writes nothing in the workdir, so it may run while training writes there (docs/weights.md).
"""

import collections
import json
import os
import time

from absl import flags
import jax
import ml_collections
import numpy as np
from PIL import Image

from ssd_jax import cli
from ssd_jax import errors
from ssd_jax import quiet
from ssd_jax import report

FLAGS = flags.FLAGS
PROG = 'ssd_jax.detect'


def define_flags() -> None:
  """The command's flags; defined only when run as a command, so that importing the module
  (tests, other commands with an --output flag) defines none."""
  flags.DEFINE_string('workdir', None, 'Training workdir (or `ssd_jax.convert` output) with '
                      'checkpoints/ and config.json.')
  flags.DEFINE_string('model', None, 'Instead of --workdir: a file written by '
                      '`python -m ssd_jax.export` (its sidecar <file>.json beside it).')
  flags.DEFINE_integer('step', None, 'Checkpoint step; default: the latest.')
  flags.DEFINE_string('output', None, 'Detections json to write (COCO results list).')
  flags.DEFINE_string('draw', None, 'Folder to create with each image and its detections drawn.')
  flags.DEFINE_float('score_threshold', 0.3, 'Keep detections with at least this score.')
  flags.DEFINE_integer('batch_size', 8, 'Images per forward pass.')
  flags.mark_flags_as_required(['output'])
  cli.define_verbose()


def list_files(paths) -> list[str]:
  """Files named in `paths`, folders expanded to their files (sorted, not recursive)."""
  if not paths:
    raise errors.UserError('give at least one image file or folder.')
  files = []
  for path in paths:
    if os.path.isdir(path):
      try:
        names = sorted(os.listdir(path))
      except OSError as e:
        raise errors.UserError(f'{path}: cannot read the folder ({e.strerror}).') from None
      files += [os.path.join(path, n) for n in names
                if not n.startswith('.') and os.path.isfile(os.path.join(path, n))]
    elif os.path.exists(path):
      files.append(path)
    else:
      raise FileNotFoundError(f'{path}: no such file or folder')
  return files


def read_image(path: str) -> np.ndarray | None:
  """uint8 [H, W, 3] RGB as displayed (EXIF orientation applied, 16-bit scaled to 8, greyscale
  replicated, alpha dropped: `image_files.to_rgb8`); None if not a readable image."""
  from ssd_jax import image_files  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as image:
      image.load()
      return np.asarray(image_files.to_rgb8(image))
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
    return None


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def image_ids(files: list[str]) -> dict[str, int | str]:
  """A run-unique `image_id` per file: its stem (an integer if all digits, as COCO's file
  names are their ids), or, for files whose stem another file shares (`x/1.jpg`, `y/1.jpg`),
  their path from the folder that holds all files, without the extension (`x/1`, `y/1`), or
  with it if that is still shared (`x/1.jpg`, `x/1.png`)."""
  stems = collections.Counter(_stem(f) for f in files)
  folders = [os.path.dirname(os.path.abspath(f)) for f in files]
  common = os.path.commonpath(folders) if folders else ''
  relative = {f: os.path.relpath(os.path.abspath(f), common) for f in files}
  no_ext = collections.Counter(os.path.splitext(r)[0] for r in relative.values())
  ids = {}
  for f in files:
    stem = _stem(f)
    if stems[stem] == 1:
      ids[f] = int(stem) if stem.isdigit() else stem
    else:
      ids[f] = os.path.splitext(relative[f])[0]
      if no_ext[ids[f]] > 1:
        ids[f] = relative[f]
  return ids


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained (or converted) with: <workdir>/config.json."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise errors.UserError(f'--workdir={workdir} has no config.json; give a training workdir '
                           'or the output of `python -m ssd_jax.convert`.')
  with open(path) as f:
    try:
      saved = json.load(f)
    except json.JSONDecodeError as e:
      raise errors.UserError(f'{path}: not valid JSON ({e}).') from None
  if not isinstance(saved, dict):
    raise errors.UserError(f'{path}: not a config (a JSON object).')
  return ml_collections.ConfigDict(saved)


def _restore(workdir: str, config, state, signature: dict, step: int | None):
  """(state, step) of the newest readable (or the requested) step; a training run may be
  saving and deleting steps meanwhile (`checkpoints.restore`, reader mode): listing the steps
  is retried once too, then it is one line saying so."""
  from ssd_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from ssd_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  for attempt in (1, 2):
    try:
      manager = checkpoints.create_manager(workdir, config)
      break
    except Exception as e:  # pylint: disable=broad-except  # A step deleted while listed.
      if attempt == 2 or isinstance(e, errors.UserError):
        if workdir_lib.training_holds(workdir):
          raise errors.UserError(f'training is saving checkpoints to '
                                 f'{os.path.join(os.path.abspath(workdir), "checkpoints")}; '
                                 'retry.') from None
        raise
  try:
    return checkpoints.restore(manager, state, signature, step, move_damaged=False,
                               writer_running=workdir_lib.training_holds(workdir))
  except ValueError as e:  # No such step, or a checkpoint that does not fit config.json.
    message = errors.one_line(e)
    if message.startswith('training is saving'):
      raise
    raise errors.UserError(f'--workdir={workdir}: {message}') from None


class Detector:
  """A restored model and its jitted eval step, for batches of image files."""

  def __init__(self, workdir: str, step: int | None = None):
    from ssd_jax import anchors  # pylint: disable=g-import-not-at-top
    from ssd_jax import checkpoints  # pylint: disable=g-import-not-at-top
    from ssd_jax import models  # pylint: disable=g-import-not-at-top
    from ssd_jax import train  # pylint: disable=g-import-not-at-top  # imports TensorFlow
    from ssd_jax.data import augment  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], 'GPU')
    self.config = config = load_config(workdir)
    self.class_names = tuple(config.input.class_names)
    priors = models.default_boxes(config)
    model = models.create_model(config.model, priors.boxes_per_cell, len(self.class_names))
    mesh = train.make_mesh()
    state = jax.eval_shape(lambda: train.create_train_state(config, model,
                                                            jax.random.PRNGKey(0)))
    if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
      raise errors.UserError(f'--workdir={workdir} has no checkpoints/ folder.')
    state, self.step = _restore(workdir, config, state,
                                checkpoints.model_signature(config, priors), step)
    if self.step is None:
      raise errors.UserError(f'--workdir={workdir}: no checkpoint in its checkpoints/ folder.')
    self.variables = state.variables
    self.apply_fn, self.priors = state.apply_fn, priors
    self.eval_fn = train.compile_steps(config, mesh, state.apply_fn, priors)[1]
    self.devices = mesh.size
    self.input_size = anchors.eval_input_size(config)
    ops = augment.eval_ops(config, self.input_size)
    self._preprocess = tf.function(
        lambda image: augment.apply_ops(ops, {'image': image})['image'],
        input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])

  def preprocess(self, pixels: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> the model's input [S, S, 3], exactly as evaluation prepares it."""
    return self._preprocess(pixels.astype(np.float32)).numpy()

  def __call__(self, images: list[np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Detections (normalized yxyx boxes) for up to `batch_size` uint8 images."""
    size = self.input_size
    batch = np.zeros((batch_size, size, size, 3), np.float32)  # One shape: one compilation.
    for i, pixels in enumerate(images):
      batch[i] = self.preprocess(pixels)
    detections = self.eval_fn(self.variables, {'image': batch})
    return {k: np.asarray(v)[:len(images)] for k, v in detections.items()}


def to_results(path: str, detections: dict, index: int, orig_size, class_names,
               score_threshold: float, image_id: int | str | None = None) -> list[dict]:
  """One image's detections above `score_threshold` as COCO results in pixels, each box
  clipped to the image (one with nothing left inside it is dropped)."""
  from ssd_jax.evaluation import pixel_boxes  # pylint: disable=g-import-not-at-top
  clipped = np.clip(np.asarray(detections['boxes'][index], np.float64), 0.0, 1.0)
  keep = (detections['valid'][index] & (detections['scores'][index] >= score_threshold)
          & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1]))
  boxes = pixel_boxes.yxyx_to_coco_xywh(clipped[keep], orig_size)
  stem = _stem(path)
  if image_id is None:
    image_id = image_ids([path])[path]
  return [{'image': stem, 'image_id': image_id, 'file_name': path, 'category_id': int(c),
           'category': class_names[c - 1], 'bbox': [round(float(v), 3) for v in box],
           'score': round(float(s), 6)}
          for c, s, box in zip(detections['classes'][index][keep],
                               detections['scores'][index][keep], boxes)]


def _draw(folder: str, path: str, pixels: np.ndarray, results: list[dict]) -> None:
  from ssd_jax import visualize  # pylint: disable=g-import-not-at-top
  h, w = pixels.shape[:2]
  boxes = [[y / h, x / w, (y + bh) / h, (x + bw) / w]
           for x, y, bw, bh in (r['bbox'] for r in results)]
  drawn = visualize.draw_boxes(pixels, np.reshape(boxes, (-1, 4)),
                               [f"{r['category']} {r['score']:.2f}" for r in results])
  name = os.path.basename(path)
  if os.path.splitext(name)[1].lower() not in ('.jpg', '.jpeg', '.png', '.bmp'):
    name += '.png'
  while os.path.exists(os.path.join(folder, name)):  # Same name from two folders.
    name = '_' + name
  Image.fromarray(drawn).save(os.path.join(folder, name))


def detect_files(workdir: str | None, paths, output: str, *, step=None, draw=None,
                 score_threshold=0.3, batch_size=8, model=None) -> list[dict]:
  """Runs the detector of `workdir` (or the export `model`) on `paths` (files or folders);
  writes and returns the results list. Raises UserError before any work for bad outputs or
  inputs."""
  from ssd_jax import file_io  # pylint: disable=g-import-not-at-top
  if (workdir is None) == (model is None):
    raise errors.UserError('give either --workdir or --model.')
  if model is not None and step is not None:
    raise errors.UserError('--step applies to --workdir only (an export holds one step).')
  file_io.check_writable(output, '--output', folder=False)
  if draw and os.path.lexists(draw):
    raise errors.UserError(f'--draw={draw} exists; give a new folder.')
  if batch_size < 1:
    raise errors.UserError(f'--batch_size={batch_size}; it must be at least 1.')
  from ssd_jax import config_keys  # pylint: disable=g-import-not-at-top
  config_keys.check_fraction(score_threshold, '--score_threshold')
  files = list_files(paths)
  ids = image_ids(files)
  shared = [f for f in files if ids[f] != image_ids([f])[f]]
  if shared:
    report.note(f'{len(shared)} files share their name with another file; their image_id is '
                f'their path: {", ".join(str(ids[f]) for f in shared[:5])}'
                + (' ...' if len(shared) > 5 else '.'))
  file_io.check_not_inputs([('--output', output, None), ('--draw', draw, ('*',))],
                           [('image', f) for f in files] + [('--model', model)])
  if draw:
    file_io.check_writable(draw, '--draw', folder=True)
  if model is not None:
    from ssd_jax import export  # pylint: disable=g-import-not-at-top
    detector = export.ExportedDetector(model)
    batch_size = detector.fixed_batch or batch_size  # A tflite file has one batch size.
  else:
    detector = Detector(workdir, step)
  batch_size = -(-batch_size // detector.devices) * detector.devices
  results, skipped, start = [], [], time.perf_counter()

  def detect_all(draw_tmp: str | None) -> None:
    """Detects in every file, drawing into `draw_tmp` (unless None); writes `output`."""
    done, pending = 0, list(files)
    while pending:
      chunk, images = [], []
      while pending and len(images) < batch_size:
        path = pending.pop(0)
        pixels = read_image(path)
        if pixels is None:
          skipped.append(path)
        else:
          chunk.append(path)
          images.append(pixels)
      if not images:
        continue
      detections = detector(images, batch_size)
      for i, (path, pixels) in enumerate(zip(chunk, images)):
        found = to_results(path, detections, i, pixels.shape[:2], detector.class_names,
                           score_threshold, ids[path])
        results.extend(found)
        if draw_tmp:
          _draw(draw_tmp, path, pixels, found)
      done += len(images)
      report.note(f'{done} images done ({len(files) - len(pending)}/{len(files)} files '
                  f'read), {done / (time.perf_counter() - start):.1f} images/s')
    if skipped:
      more = f' and {len(skipped) - 5} more' if len(skipped) > 5 else ''
      report.note(f'Skipped {len(skipped)} files that are not readable images: '
                  f'{", ".join(skipped[:5])}{more}.')
    if not done:
      raise errors.UserError(f'none of the {len(files)} files is a readable image; nothing '
                             'written.')
    text = json.dumps(results, indent=1) + '\n'
    file_io.write_text(output, text)

  if draw:  # The drawings' folder appears only when complete, after the detections file.
    file_io.write_folder_atomically(draw, detect_all)
  else:
    detect_all(None)
  done = len(files) - len(skipped)
  report.note(f'{len(results)} detections (score >= {score_threshold}) in {done} images from '
              f'step {detector.step} of {model or workdir} written to {output}'
              + (f'; drawn into {draw}.' if draw else '.'))
  return results


def main(argv):
  quiet.libraries()
  quiet.import_tensorflow()
  errors.run_command(PROG, lambda: detect_files(
      FLAGS.workdir, argv[1:], FLAGS.output, step=FLAGS.step, draw=FLAGS.draw,
      model=FLAGS.model,
      score_threshold=FLAGS.score_threshold,
      batch_size=FLAGS.batch_size))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
