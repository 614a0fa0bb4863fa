"""Evaluation files: where a result goes and what it records (no training)."""

import json
import os

import numpy as np
import pytest

from configs import smoke
from ssd_jax import run_files
from ssd_jax.evaluation import result as result_lib
from ssd_jax.evaluation import scored_data


def batch(ids, boxes_per_image, example_mask=None):
  """An eval batch as the evaluators get it: padded to 3 boxes, labels 0 = padding."""
  n = len(ids)
  labels = np.zeros((n, 3), np.int64)
  boxes = np.zeros((n, 3, 4), np.float32)
  for i, image_boxes in enumerate(boxes_per_image):
    for j, (label, box) in enumerate(image_boxes):
      labels[i, j], boxes[i, j] = label, box
  out = {'image_id': np.array(ids), 'labels': labels, 'boxes': boxes,
         'difficult': np.zeros((n, 3), bool), 'crowd': np.zeros((n, 3), bool)}
  if example_mask is not None:
    out['example_mask'] = np.array(example_mask)
  return out


A = [(1, (0.1, 0.1, 0.5, 0.5))]
B = [(2, (0.2, 0.3, 0.6, 0.9)), (1, (0.0, 0.0, 1.0, 1.0))]


def digest(*batches):
  fingerprint = scored_data.Fingerprint()
  for b in batches:
    fingerprint.add_batch(b)
  return fingerprint.hexdigest(), fingerprint.num_images


def test_fingerprint_depends_on_the_images_not_on_their_batches():
  whole = digest(batch([b'a', b'b', b'c'], [A, B, []]))
  assert whole[1] == 3
  # Other order, other batch size, a padding image: the same data.
  assert digest(batch([b'c', b'b'], [[], B]), batch([b'a', b'x'], [A, B], [True, False])) == whole
  # One box moved, one label changed, one image left out, one id renamed: other data.
  moved = [(2, (0.2, 0.3, 0.6, 0.91)), B[1]]
  relabeled = [(3, B[0][1]), B[1]]
  for changed in (batch([b'a', b'b', b'c'], [A, moved, []]),
                  batch([b'a', b'b', b'c'], [A, relabeled, []]),
                  batch([b'a', b'b'], [A, B]),
                  batch([b'a', b'b', b'd'], [A, B, []])):
    assert digest(changed)[0] != whole[0]
  flagged = batch([b'a', b'b', b'c'], [A, B, []])
  flagged['difficult'][1, 0] = True
  assert digest(flagged)[0] != whole[0]


def test_ids_cross_processes_unchanged():
  for ids in (np.array([3, 10**12], np.int64), np.array([b'000001', b'x' * 64])):
    encoded = scored_data.encode_ids(ids)
    assert encoded.dtype in (np.int64, np.uint8)
    np.testing.assert_array_equal(scored_data.decode_ids(encoded), ids)


class _Writer:
  def __init__(self):
    self.tags = []

  def write_scalars(self, step, scalars):
    del step
    self.tags += list(scalars)


def result(mAP, data):
  return result_lib.EvalResult({'mAP': mAP}, ('a',), {'a': 1}, {'a': 1}, data=data)


def record(fingerprint, split='validation', **config):
  return {'dataset': 'shapes', 'split': split, 'num_images': 8, 'fingerprint': fingerprint,
          'config': config}


def test_other_data_goes_to_its_own_folder(tmp_path):
  workdir = str(tmp_path)
  own, seed = record('ab' * 32), record('cd' * 32, shapes_seed=4242)
  writer = _Writer()
  run_files.write_eval(workdir, 8, result(0.7, own), writer, 'voc07', elapsed_s=10.0)
  path = run_files.write_eval(workdir, 8, result(0.5, seed), writer, 'voc07', own=False)
  assert path == os.path.join(workdir, 'eval', 'shapes-validation-cdcdcdcd', 'step_8.json')
  # Same config as the run's, other files found (other ground truth): the run's file stays.
  moved = record('ef' * 32)
  assert run_files.write_eval(workdir, 8, result(0.4, moved), writer, 'voc07') == os.path.join(
      workdir, 'eval', 'shapes-validation-efefefef', 'step_8.json')
  # A clash of the short fingerprint in a tag's folder: the whole fingerprint names another.
  clash = record('cd' * 4 + '00' * 28)
  assert run_files.write_eval(workdir, 8, result(0.3, clash), writer, 'voc07',
                              own=False).endswith(f"shapes-validation-{clash['fingerprint']}"
                                                  '/step_8.json')
  with open(os.path.join(workdir, 'eval', 'step_8.json')) as f:
    doc = json.load(f)
  assert (doc['metrics']['mAP'], doc['data'], doc['elapsed_s']) == (0.7, own, 10.0)
  with open(path) as f:
    doc = json.load(f)
  assert (doc['metrics']['mAP'], doc['data']) == (0.5, seed)
  assert 'eval/mAP' in writer.tags and 'eval/shapes-validation-cdcdcdcd/mAP' in writer.tags
  # The same data and metric again updates its file; another metric joins it.
  run_files.write_eval(workdir, 8, result(0.6, seed), writer, 'voc07', own=False)
  run_files.write_eval(workdir, 8, result(0.2, seed), writer, 'voc', own=False)
  with open(path) as f:
    doc = json.load(f)
  assert doc['metrics']['mAP'] == 0.6 and set(doc['by_metric']) == {'voc07', 'voc'}


def test_own_data_is_the_data_config_of_the_run(tmp_path):
  workdir = str(tmp_path)
  config = smoke.get_config()
  assert run_files.is_own_data(workdir, config)  # No config.json: nothing to compare with.
  run_files.write_config(workdir, config, None)
  assert run_files.is_own_data(workdir, config)
  for key, value in (('input.eval_split', 'validation'),  # the default, spelled out
                     ('input.data_dir', '/elsewhere'),  # where the data is, not what
                     ('eval.metric', 'coco'), ('input.batch_size', 2)):
    changed = smoke.get_config()
    group, name = key.split('.')
    changed[group][name] = value
    assert run_files.is_own_data(workdir, changed), key
  for key, value in (('input.shapes_seed', 4242), ('input.eval_split', 'train'),
                     ('eval.num_images', 4), ('input.shapes_num_validation', 9),
                     ('input.dataset', 'voc')):
    changed = smoke.get_config()
    group, name = key.split('.')
    changed[group][name] = value
    assert not run_files.is_own_data(workdir, changed), key


@pytest.mark.parametrize('split,name', [('validation', 'shapes-validation-01234567'),
                                        ('test[:100]+train', 'shapes-test_100_train-01234567')])
def test_tag_is_a_plain_folder_name(split, name):
  assert run_files.tag(record('0123456789' * 6 + 'abcd', split)) == name
