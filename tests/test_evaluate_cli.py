"""End-to-end tests of `python -m ssd_jax.evaluate` and of the file readers behind it."""

import contextlib
import errno
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import pytest

from ssd_jax import errors
from ssd_jax import evaluate
from ssd_jax import file_io
from ssd_jax.evaluation import files
from ssd_jax.evaluation import voc
from tests import test_evaluation_coco
from tests import test_evaluation_voc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = test_evaluation_voc.CLASSES  # ('cat', 'dog', 'bird')


def make_tempdir(test):
  """A temporary folder removed after the test (absl's create_tempdir needs parsed flags)."""
  path = tempfile.mkdtemp()
  test.addCleanup(shutil.rmtree, path, ignore_errors=True)
  return path


def run_command(*args):
  """Runs the command in a subprocess; returns (returncode, stdout, stderr)."""
  proc = subprocess.run([sys.executable, '-m', 'ssd_jax.evaluate', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120, check=False)
  return proc.returncode, proc.stdout, proc.stderr


def parse_flags(test, *args):
  """The command's flags parsed from `args` (and reset after the test); returns argv."""
  evaluate.FLAGS.unparse_flags()
  test.addCleanup(evaluate.FLAGS.unparse_flags)
  return evaluate.FLAGS(['evaluate', *args])


def run_main(test, *args):
  """Runs `evaluate.main` in this process, expecting it to stop with an error.

  Returns the line it exits with (`sys.exit(line)`: Python prints it to stderr and exits 1)
  after checking it is one line and that nothing else was printed, not even the table.
  """
  argv = parse_flags(test, *args)
  stdout, stderr = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    with test.assertRaises(SystemExit) as cm:
      evaluate.main(argv)
  line = cm.exception.code
  test.assertIsInstance(line, str)
  test.assertRegex(line, r'^ssd_jax\.evaluate: error: [^\n]+$')
  test.assertEqual((stdout.getvalue(), stderr.getvalue()), ('', ''))
  return line


class FullDiskFile(io.FileIO):
  """A file whose write stores a few bytes, then fails as on a full disk."""

  def write(self, data):
    super().write(bytes(data)[:10])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def write_devkit(root, gt_list, image_names, split='test', extra_images=()):
  """A VOC devkit year folder: Annotations/<id>.xml and ImageSets/Main/<split>.txt."""
  os.makedirs(os.path.join(root, 'Annotations'), exist_ok=True)
  os.makedirs(os.path.join(root, 'ImageSets', 'Main'), exist_ok=True)
  with open(os.path.join(root, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
    f.write(''.join(f'{name}\n' for name in image_names))
  for index, name in enumerate(list(image_names) + list(extra_images)):
    objects = ''.join(
        f'<object><name>{CLASSES[label - 1]}</name><pose>Left</pose><truncated>0</truncated>'
        f'<difficult>{int(difficult)}</difficult><bndbox><xmin>{int(box[0])}</xmin>'
        f'<ymin>{int(box[1])}</ymin><xmax>{int(box[2])}</xmax><ymax>{int(box[3])}</ymax>'
        '</bndbox></object>'
        for image, label, box, difficult in gt_list if image == index)
    with open(os.path.join(root, 'Annotations', f'{name}.xml'), 'w') as f:
      f.write(f'<annotation><filename>{name}.jpg</filename><size><width>500</width>'
              f'<height>400</height><depth>3</depth></size>{objects}</annotation>')


def detections_json(det_list, image_names):
  """Detections in the command's format; classes alternate between names and indices."""
  out = []
  for k, (image, label, box, score) in enumerate(det_list):
    box = [float(v) for v in box]
    out.append({'image_id': image_names[image],
                'category_id': CLASSES[label - 1] if k % 2 else label,
                'bbox': [box[0], box[1], box[2] - box[0], box[3] - box[1]], 'score': score})
  return out


def as_read(detections, image_names):
  """The boxes as the command reads them back: [x, y, x + w, y + h]."""
  index = {name: i for i, name in enumerate(image_names)}
  return [(index[d['image_id']],
           d['category_id'] if isinstance(d['category_id'], int)
           else CLASSES.index(d['category_id']) + 1,
           [d['bbox'][0], d['bbox'][1], d['bbox'][0] + d['bbox'][2], d['bbox'][1] + d['bbox'][3]],
           d['score']) for d in detections]


class VocCommandTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.tmp = make_tempdir(self)
    self.devkit = os.path.join(self.tmp, 'VOC2007')
    self.gt_list, det_list = test_evaluation_voc.random_case(3, num_images=6)
    self.names = [f'{i:06d}' for i in range(6)]
    write_devkit(self.devkit, self.gt_list, self.names, extra_images=['000099'])
    self.detections = detections_json(det_list, self.names)
    self.det_path = self.write_json('dets.json', self.detections)

  def write_json(self, name, content):
    path = os.path.join(self.tmp, name)
    with open(path, 'w') as f:
      json.dump(content, f)
    return path

  @parameterized.parameters('voc07', 'voc')
  @pytest.mark.slow
  def test_command_matches_reference(self, metric):
    out = os.path.join(self.tmp, 'out', 'metrics.json')
    plots = os.path.join(self.tmp, 'plots')
    rc, stdout, stderr = run_command(
        f'--ground_truth={self.devkit}', f'--detections={self.det_path}', f'--metric={metric}',
        '--class_names=cat,dog,bird', f'--output={out}', f'--plots={plots}')
    self.assertEqual(rc, 0, stderr)
    with open(out) as f:
      written = json.load(f)
    self.assertEqual(written['metric'], metric)
    expected = test_evaluation_voc.reference_aps(
        self.gt_list, as_read(self.detections, self.names), metric == 'voc07')
    for name in CLASSES:
      self.assertAlmostEqual(written['metrics'][f'AP/{name}'], expected[name], delta=1e-12)
      self.assertIn(name, stdout)
    self.assertAlmostEqual(written['metrics']['mAP'], np.mean(list(expected.values())),
                           delta=1e-12)
    self.assertIn('mAP', stdout)
    self.assertEqual(sum(written['num_detections'].values()), len(self.detections))
    self.assertEqual(sorted(os.listdir(plots)), ['pr_bird.png', 'pr_cat.png', 'pr_dog.png'])

  @pytest.mark.slow
  def test_empty_detections_give_zero_with_warning(self):
    out = os.path.join(self.tmp, 'metrics.json')
    rc, _, stderr = run_command(
        f'--ground_truth={self.devkit}', f'--detections={self.write_json("empty.json", [])}',
        '--class_names=cat,dog,bird', f'--output={out}')
    self.assertEqual(rc, 0, stderr)
    self.assertIn('No detections', stderr)
    with open(out) as f:
      self.assertEqual(json.load(f)['metrics']['mAP'], 0.0)

  @pytest.mark.slow
  def test_bad_input_exits_with_message_not_traceback(self):
    bad = self.write_json('bad.json', [{**self.detections[0], 'image_id': '000099'}])
    rc, _, stderr = run_command(f'--ground_truth={self.devkit}', f'--detections={bad}',
                                '--class_names=cat,dog,bird')
    self.assertEqual(rc, 1)
    self.assertIn("error: detection 0", stderr)
    self.assertIn("image_id '000099' is not in the image set", stderr)
    self.assertNotIn('Traceback', stderr)
    self.assertLen(stderr.splitlines(), 1)

  @pytest.mark.slow
  def test_deep_json_exits_with_one_line(self):
    # In a real process (the full interpreter stack): RecursionError was a 1000-line traceback.
    deep = os.path.join(self.tmp, 'deep.json')
    with open(deep, 'w') as f:
      f.write('[' * 200_000)
    rc, stdout, stderr = run_command(f'--ground_truth={self.devkit}', f'--detections={deep}')
    self.assertEqual((rc, stdout), (1, ''))
    self.assertEqual(stderr.splitlines(), [f'ssd_jax.evaluate: error: {deep}: not usable JSON '
                                           '(lists or objects nested too deeply for the parser).'])


  def test_annotation_class_outside_class_list(self):
    with self.assertRaisesRegex(ValueError, "class 'bird' is not in the class list"):
      files.evaluate_files(self.devkit, self.det_path, 'voc07', class_names=('cat', 'dog'))

  def test_default_classes_are_voc(self):
    detections = [{**d, 'category_id': d['category_id'] if isinstance(d['category_id'], str)
                   else CLASSES[d['category_id'] - 1]} for d in self.detections]
    path = self.write_json('named.json', detections)
    metrics = files.evaluate_files(self.devkit, path, 'voc07').metrics  # cat, dog, bird are VOC's.
    self.assertLen(metrics, 21)
    expected = test_evaluation_voc.reference_aps(self.gt_list, as_read(detections, self.names),
                                                 True)
    for name in CLASSES:
      self.assertAlmostEqual(metrics[f'AP/{name}'], expected[name], delta=1e-12)

  def test_evaluator_and_command_agree(self):
    # The training loop's VocEvaluator, its detections_json() through the command.
    evaluator = voc.VocEvaluator(CLASSES, use_07_metric=True)
    sizes = np.array([[400, 500]] * 6)
    det_list = as_read(self.detections, self.names)
    batch = {'boxes': np.zeros((6, 8, 4), np.float32), 'labels': np.zeros((6, 8), np.int32),
             'mask': np.zeros((6, 8), bool), 'difficult': np.zeros((6, 8), bool),
             'image_id': np.array([n.encode() for n in self.names]), 'orig_size': sizes}
    dets = {'boxes': np.zeros((6, 32, 4), np.float32), 'scores': np.zeros((6, 32), np.float32),
            'classes': np.ones((6, 32), np.int32), 'valid': np.zeros((6, 32), bool)}
    for image in range(6):
      for j, g in enumerate([g for g in self.gt_list if g[0] == image]):
        batch['boxes'][image, j] = voc.pixel_boxes.devkit_xyxy_to_yxyx(g[2], sizes[image])
        batch['labels'][image, j], batch['mask'][image, j] = g[1], True
        batch['difficult'][image, j] = g[3]
      for j, d in enumerate([d for d in det_list if d[0] == image]):
        dets['boxes'][image, j] = voc.pixel_boxes.devkit_xyxy_to_yxyx(d[2], sizes[image])
        dets['scores'][image, j], dets['classes'][image, j] = d[3], d[1]
        dets['valid'][image, j] = True
    evaluator.add_batch(batch, dets)
    path = self.write_json('from_evaluator.json', evaluator.detections_json())
    from_file = files.evaluate_files(self.devkit, path, 'voc07', class_names=CLASSES).metrics
    metrics = evaluator.result()
    # The evaluator adds the size bins (it knows each image's size); the rest is the same.
    self.assertEqual(set(metrics) - set(from_file), {'mAP_small', 'mAP_medium', 'mAP_large'})
    for key, value in from_file.items():
      self.assertAlmostEqual(metrics[key], value, delta=1e-12, msg=key)


class CommandErrorsTest(parameterized.TestCase):
  """Each error ends `main` with one line naming the culprit (in-process, for speed)."""

  def setUp(self):
    super().setUp()
    self.tmp = make_tempdir(self)
    self.devkit = os.path.join(self.tmp, 'VOC2007')
    write_devkit(self.devkit, [(0, 1, [1, 1, 20, 20], False)], ['000001'])
    self.dets = os.path.join(self.tmp, 'dets.json')
    with open(self.dets, 'w') as f:
      json.dump([{'image_id': '000001', 'category_id': 'cat', 'bbox': [1, 1, 19, 19],
                  'score': 0.9}], f)
    self.a_file = os.path.join(self.tmp, 'a_file')
    with open(self.a_file, 'w') as f:
      f.write('x')

  def run_main(self, *args, ground_truth=None, dets=None):
    return run_main(self, f'--ground_truth={ground_truth or self.devkit}',
                    f'--detections={dets or self.dets}', '--class_names=cat,dog,bird', *args)

  @parameterized.named_parameters(
      ('output_is_folder', '--output={tmp}', '--output={tmp} is a folder'),
      ('output_parent_is_file', '--output={a_file}/m.json', '{a_file} is not a folder'),
      ('output_under_file', '--output={a_file}/new/m.json', '{a_file} is not a folder'),
      ('output_unwritable', '--output=/proc/ssd_jax_test/m.json',
       'cannot write in /proc '),
      ('plots_is_file', '--plots={a_file}', '--plots={a_file} is a file'),
      ('plots_parent_is_file', '--plots={a_file}/plots', '{a_file} is not a folder'),
      ('plots_unwritable', '--plots=/proc/ssd_jax_test', 'cannot write in /proc '),
  )
  def test_unwritable_output_before_scoring(self, flag, message):
    # run_main checks that nothing was printed: the metrics were not computed, so not lost.
    line = self.run_main(flag.format(tmp=self.tmp, a_file=self.a_file))
    self.assertIn(message.format(tmp=self.tmp, a_file=self.a_file), line)

  def test_full_disk_leaves_no_partial_file(self):
    real_open = open
    def full_disk_open(file, mode='r', *args, **kwargs):
      return FullDiskFile(file, 'wb') if mode == 'wb' else real_open(file, mode, *args, **kwargs)
    for flag, folder in (('--output', os.path.join(self.tmp, 'out')),
                         ('--plots', os.path.join(self.tmp, 'plots'))):
      with self.subTest(flag):
        path = os.path.join(folder, 'm.json') if flag == '--output' else folder
        with mock.patch.object(file_io, 'open', full_disk_open, create=True):
          argv = parse_flags(self, f'--ground_truth={self.devkit}', f'--detections={self.dets}',
                             '--class_names=cat,dog,bird', f'{flag}={path}')
          with contextlib.redirect_stdout(io.StringIO()) as stdout:
            with self.assertRaises(SystemExit) as cm:
              evaluate.main(argv)
        self.assertIn('mAP', stdout.getvalue())  # The table was printed first.
        written = os.path.join(folder, 'm.json' if flag == '--output' else 'pr_cat.png')
        self.assertRegex(cm.exception.code, rf'^ssd_jax\.evaluate: error: cannot write '
                         rf'{written}: disk full \([0-9.]+ MiB free on {folder}\)\.$')
        self.assertEqual(os.listdir(folder), [])

  @parameterized.named_parameters(
      ('not_utf8', b'[{"image_id": "\xff"}]', '{path}: not UTF-8 text (utf-8 cannot decode '
       "b'\\xff' at byte 15: invalid start byte)."),
      ('string_score', b'[{"image_id": "000001", "category_id": "cat", "bbox": [1, 1, 9, 9], '
       b'"score": "0.5"}]', 'detection 0 ('),
      ('bool_in_bbox', b'[{"image_id": "000001", "category_id": "cat", "bbox": [1, 1, true, 9],'
       b' "score": 0.5}]', 'bbox must be a list of 4 numbers (not strings or booleans), got '
       '[1, 1, True, 9].'),
      ('json_error', b'[{', '{path}: not valid JSON'),
  )
  def test_bad_detections_file(self, content, message):
    path = os.path.join(self.tmp, 'bad.json')
    with open(path, 'wb') as f:
      f.write(content)
    self.assertIn(message.format(path=path), self.run_main(dets=path))

  def test_missing_or_unreadable_detections(self):
    missing = os.path.join(self.tmp, 'none.json')
    self.assertEqual(self.run_main(dets=missing),
                     f'ssd_jax.evaluate: error: detections file not found: {missing}')
    self.assertEqual(self.run_main(dets=self.tmp), 'ssd_jax.evaluate: error: cannot read the '
                     f'detections file {self.tmp}: Is a directory.')
    self.assertIn(f'cannot read the detections file {self.a_file}/x.json: Not a directory',
                  self.run_main(dets=f'{self.a_file}/x.json'))

  def test_ground_truth_neither_folder_nor_json(self):
    png = os.path.join(self.tmp, 'image.png')
    with open(png, 'wb') as f:
      f.write(b'\x89PNG\r\n\x1a\n')
    self.assertIn(f'{png}: not UTF-8 text', self.run_main('--metric=coco', ground_truth=png))
    self.assertIn(f'{self.a_file}: not valid JSON',
                  self.run_main('--metric=coco', ground_truth=self.a_file))
    self.assertIn(f'{self.dets} is not a COCO instances json (a JSON list',
                  self.run_main('--metric=coco', ground_truth=self.dets))
    self.assertIn('needs a COCO instances json, got the folder',
                  self.run_main('--metric=coco'))
    self.assertIn('needs a VOC devkit year folder (with Annotations/ and ImageSets/Main/), got '
                  f'the file {self.dets}', self.run_main(ground_truth=self.dets))
    missing = os.path.join(self.tmp, 'VOC2012')
    self.assertIn(f'VOC ground truth folder not found: {missing}',
                  self.run_main(ground_truth=missing))
    self.assertIn('COCO ground truth file not found: /nonexistent.json',
                  self.run_main('--metric=coco', ground_truth='/nonexistent.json'))

  def test_error_line(self):
    self.assertEqual(errors.one_line(PermissionError(13, 'Permission denied', '/x/plots')),
                     '/x/plots: Permission denied')
    self.assertEqual(errors.one_line(errors.UserError('a\nb')), 'a b')

  def test_verbose_and_env_reraise(self):
    missing = os.path.join(self.tmp, 'none.json')
    for args, env in ((['--verbose'], {}), ([], {'SSD_JAX_TRACEBACK': '1'})):
      with self.subTest(str((args, env))):
        argv = parse_flags(self, f'--ground_truth={self.devkit}', f'--detections={missing}',
                           *args)
        with mock.patch.dict(os.environ, env), self.assertRaisesRegex(
            FileNotFoundError, f'detections file not found: {missing}'):
          evaluate.main(argv)

class VocBadFilesTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.tmp = make_tempdir(self)
    self.devkit = os.path.join(self.tmp, 'VOC2007')
    self.names = ['000001', '000002']
    write_devkit(self.devkit, [(0, 1, [1, 1, 20, 20], False), (1, 2, [5, 5, 50, 60], True)],
                 self.names, extra_images=['000003'])
    self.good = {'image_id': '000001', 'category_id': 'cat', 'bbox': [1, 1, 19, 19],
                 'score': 0.9}

  def evaluate(self, detections, devkit=None, split='test', metric='voc07'):
    path = os.path.join(self.tmp, 'dets.json')
    with open(path, 'w') as f:
      if isinstance(detections, str):
        f.write(detections)
      else:
        json.dump(detections, f)
    return files.evaluate_files(devkit or self.devkit, path, metric, split, CLASSES)

  def test_good_file(self):
    metrics = self.evaluate([self.good]).metrics
    self.assertAlmostEqual(metrics['AP/cat'], 1.0, places=12)
    self.assertTrue(math.isnan(metrics['AP/dog']))  # Only difficult ground truth.

  def test_bad_detections(self):
    cases = [
        ({'image_id': '000003'}, "image_id '000003' is not in the image set"),
        ({'image_id': 1}, "image_id 1 is not in the image set"),
        ({'category_id': 'zebra'}, "category_id 'zebra' is neither a class name"),
        ({'category_id': 0}, "category_id 0 is neither"),
        ({'category_id': 4}, "category_id 4 is neither"),
        ({'bbox': [1, float('nan'), 3, 4]}, 'NaN or inf'),
        ({'bbox': [1, 1, -3, 4]}, 'negative width or height'),
        ({'bbox': [1, 1, 3]}, 'bbox must be a list of 4 numbers'),
        ({'bbox': 5}, 'bbox must be a list of 4 numbers'),
        ({'score': 'high'}, r"score must be a number \(not strings or booleans\), got 'high'"),
        # json numbers only: np.float64 would take these, and bool is an int in Python.
        ({'score': '0.5'}, r"detection 1 .*score must be a number .*got '0.5'"),
        ({'score': True}, r'detection 1 .*score must be a number .*got True'),
        ({'bbox': [1, 2, True, 4]}, r'detection 1 .*bbox must be .*got \[1, 2, True, 4\]'),
        ({'bbox': ['1', 1, 3, 4]}, r'detection 1 .*bbox must be a list of 4 numbers'),
        ({'bbox': [1, 1, 10**400, 4]}, r'detection 1 .*bbox must be a list of 4 numbers'),
        ({'category_id': '3'}, r"detection 1 .*category_id '3' is neither"),
        ({'category_id': True}, r'detection 1 .*category_id True is neither'),
    ]
    for change, message in cases:
      with self.subTest(message):
        with self.assertRaisesRegex(errors.UserError, message):
          self.evaluate([self.good, {**self.good, **change}])

  def test_nan_and_inf_literals(self):
    # Python's json reads NaN, Infinity and 1e400 (= inf) as floats; they must not pass.
    good = json.dumps(self.good)
    for bad in ('NaN', 'Infinity', '-Infinity', '1e400'):
      for key, value in (('bbox', f'[1, 1, {bad}, 4]'), ('score', bad)):
        with self.subTest(f'{key}={value}'):
          text = (f'[{good}, {{"image_id": "000001", "category_id": "cat", "bbox": '
                  f'{value if key == "bbox" else "[1, 1, 3, 4]"}, "score": '
                  f'{value if key == "score" else "0.5"}}}]')
          with self.assertRaisesRegex(errors.UserError, r'detection 1 .*NaN or inf'):
            self.evaluate(text)

  def test_bad_files(self):
    with self.assertRaisesRegex(errors.UserError, 'needs image_id, category_id, bbox and score'):
      self.evaluate([{'image_id': '000001'}])
    with self.assertRaisesRegex(errors.UserError, 'not valid JSON'):
      self.evaluate('[{"image_id": ')
    with self.assertRaisesRegex(errors.UserError, 'expected a JSON list'):
      self.evaluate({'image_id': '000001'})
    with self.assertRaisesRegex(FileNotFoundError, 'detections file not found'):
      files.evaluate_files(self.devkit, os.path.join(self.tmp, 'none.json'), 'voc07')
    with self.assertRaisesRegex(errors.UserError, f'cannot read the detections file {self.tmp}: '
                                'Is a directory'):
      files.evaluate_files(self.devkit, self.tmp, 'voc07')

  def test_undecodable_and_deep_json(self):
    path = os.path.join(self.tmp, 'dets.json')
    with open(path, 'wb') as f:
      f.write(b'[{"image_id": "00\xe9001"}]')  # Latin-1, not UTF-8.
    with self.assertRaisesRegex(errors.UserError, f'{path}: not UTF-8 text .* at byte 17'):
      files.load_detections(path)
    with open(path, 'w') as f:
      f.write('[' * 200_000)
    with self.assertRaisesRegex(errors.UserError, f'{path}: .*nested too deeply'):
      files.load_detections(path)
    with open(path, 'w', encoding='utf-16') as f:  # With a BOM; json allows UTF-16.
      json.dump([self.good], f)
    self.assertEqual(files.load_detections(path), [self.good])

  def test_bad_ground_truth(self):
    with self.assertRaisesRegex(FileNotFoundError, 'VOC ground truth folder not found'):
      self.evaluate([self.good], devkit=os.path.join(self.tmp, 'VOC2012'))
    with self.assertRaisesRegex(FileNotFoundError, r'val\.txt.*wrong --split'):
      self.evaluate([self.good], split='val')
    os.remove(os.path.join(self.devkit, 'Annotations', '000002.xml'))
    with self.assertRaisesRegex(FileNotFoundError, r'annotation file not found: .*000002\.xml'):
      self.evaluate([self.good])

  def test_bad_annotation(self):
    with open(os.path.join(self.devkit, 'Annotations', '000002.xml'), 'w') as f:
      f.write('<annotation><object><name>cat</name><bndbox><xmin>9</xmin><ymin>1</ymin>'
              '<xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>')
    with self.assertRaisesRegex(ValueError, "negative size .*image '000002'"):
      self.evaluate([self.good])
    with open(os.path.join(self.devkit, 'Annotations', '000002.xml'), 'w') as f:
      f.write('<annotation><object><name>cat</name></object>')
    with self.assertRaisesRegex(errors.UserError, '000002.xml: not valid XML'):
      self.evaluate([self.good])
    with open(os.path.join(self.devkit, 'Annotations', '000002.xml'), 'w') as f:
      f.write('<annotation><object><name>cat</name><difficult>yes</difficult><bndbox><xmin>1'
              '</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>')
    with self.assertRaisesRegex(errors.UserError, '000002.xml: .*an integer <difficult>'):
      self.evaluate([self.good])
    with open(os.path.join(self.devkit, 'ImageSets', 'Main', 'test.txt'), 'wb') as f:
      f.write(b'000001\n\xff\n')
    with self.assertRaisesRegex(errors.UserError, r'test\.txt: not UTF-8 text \(byte 7\)'):
      self.evaluate([self.good])

  def test_wrong_kind_of_ground_truth(self):
    with self.assertRaisesRegex(ValueError, 'needs a COCO instances json'):
      self.evaluate([self.good], metric='coco')
    with self.assertRaisesRegex(ValueError, 'needs a VOC devkit year folder'):
      self.evaluate([self.good], devkit=os.path.join(self.devkit, 'ImageSets', 'Main',
                                                     'test.txt'))
    with self.assertRaisesRegex(errors.UserError, 'needs a VOC devkit year folder'):
      self.evaluate([self.good], devkit='/dev/null')  # Exists, but neither file nor folder.


class CocoCommandTest(absltest.TestCase):

  @pytest.mark.slow
  def test_command_matches_pycocotools(self):
    dataset, detections = test_evaluation_coco.make_dataset(2)
    with tempfile.TemporaryDirectory() as tmp:
      gt_path, det_path = os.path.join(tmp, 'instances.json'), os.path.join(tmp, 'dets.json')
      out = os.path.join(tmp, 'metrics.json')
      with open(gt_path, 'w') as f:
        json.dump(dataset, f)
      with open(det_path, 'w') as f:
        json.dump(detections, f)
      rc, stdout, stderr = run_command(f'--ground_truth={gt_path}', f'--detections={det_path}',
                                       '--metric=coco', f'--output={out}',
                                       f'--plots={os.path.join(tmp, "plots")}')
      self.assertEqual(rc, 0, stderr)
      with open(out) as f:
        metrics = json.load(f)['metrics']
      self.assertLen(os.listdir(os.path.join(tmp, 'plots')), 3)
    expected = test_evaluation_coco.pycocotools_stats(dataset, detections)
    self.assertEqual([metrics[name] for name in
                      ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl',
                       'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl')], list(expected))
    self.assertIn('Average Precision  (AP) @[ IoU=0.50:0.95', stdout)
    for name in ('person', 'car', 'dog'):
      self.assertIn(name, stdout)

  def test_strings_and_booleans_are_not_numbers_or_ids(self):
    dataset, detections = test_evaluation_coco.make_dataset(2)
    good = {**detections[0], 'bbox': [float(v) for v in detections[0]['bbox']]}
    cases = [({'score': '0.5'}, "score '0.5' is not a number"),
             ({'score': False}, 'score False is not a number'),
             ({'bbox': [1, 2, True, 4]}, r'bbox \[1, 2, True, 4\] is not a list of 4 numbers'),
             ({'bbox': ['1', 2, 3, 4]}, 'bbox .* is not a list of 4 numbers'),
             ({'category_id': '3'}, "category_id '3' is not a category id"),
             ({'category_id': True}, 'category_id True is not a category id'),  # True == 1.
             ({'image_id': str(good['image_id'])}, 'image_id .* is not an image id'),
             ({'score': float('inf')}, 'bad bbox or score'),
             ({'bbox': [1, 2, 10**400, 4]}, 'bad bbox or score')]
    with tempfile.TemporaryDirectory() as tmp:
      gt_path, det_path = os.path.join(tmp, 'instances.json'), os.path.join(tmp, 'dets.json')
      with open(gt_path, 'w') as f:
        json.dump(dataset, f)
      for change, message in cases:
        with self.subTest(message):
          with open(det_path, 'w') as f:
            json.dump([good, {**good, **change}], f)
          with self.assertRaisesRegex(errors.UserError, f'detection 1.*{message}'):
            files.evaluate_files(gt_path, det_path, 'coco')


if __name__ == '__main__':
  absltest.main()
