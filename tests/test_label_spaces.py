"""A model whose labels are COCO category ids (torchvision's 91-index space) evaluated on COCO
data with 80 (here 3) contiguous labels: the label map, its errors, and `--mode=eval` of a
converted torchvision workdir against pycocotools run directly on the same detections."""

import json
import os

import numpy as np
from pycocotools import coco as coco_lib
from pycocotools import cocoeval
import pytest
from safetensors import numpy as st

from configs import default
from configs import torchvision_ssd300
from ssd_jax import convert
from ssd_jax import errors
from ssd_jax import train
from ssd_jax.classes import COCO_CLASSES
from ssd_jax.data import coco_folder
from ssd_jax.data import input_pipeline
from ssd_jax.evaluation import label_spaces
from tests.test_convert import random_state
from tests.test_convert import torchvision_ssd300_shapes
from tests.test_data_folders import write_coco_folder

# write_coco_folder's categories, sorted by id: data labels 1, 2, 3.
FOLDER_NAMES, FOLDER_IDS = ('person', 'car', 'train'), (1, 3, 7)


def _info(names=FOLDER_NAMES, ids=FOLDER_IDS, name='coco_folder'):
  return input_pipeline.DatasetInfo(name=name, class_names=names, num_train_examples=3,
                                    num_eval_examples=2, train_split='train2017',
                                    eval_split='val2017', category_ids=ids)


def test_torchvision_labels_map_to_the_data_sets_by_category_id():
  table = label_spaces.detection_label_map(torchvision_ssd300.get_config(), _info(), False)
  assert table.shape == (91,)
  assert {i: int(v) for i, v in enumerate(table) if v} == {1: 1, 3: 2, 7: 3}
  detections = {'classes': np.array([[3, 12, 1, 7, 2]]), 'valid': np.array([[1, 1, 1, 1, 0]],
                                                                              bool)}
  mapped = label_spaces.map_detections(detections, table)
  np.testing.assert_array_equal(mapped['classes'], [[2, 0, 1, 3, 0]])
  np.testing.assert_array_equal(mapped['valid'], [[True, False, True, True, False]])
  # The whole COCO label space: every id has a torchvision label, no 'N/A' gets one.
  coco = _info(COCO_CLASSES, input_pipeline.COCO_CATEGORY_IDS, 'coco')
  table = label_spaces.detection_label_map(torchvision_ssd300.get_config(), coco, False)
  names = torchvision_ssd300.get_config().input.class_names
  assert [names[i - 1] for i in np.flatnonzero(table)] == list(COCO_CLASSES)


@pytest.mark.parametrize('change, info, training, match', [
    ({}, _info(), True, r'training needs the data set\'s labels'),
    ({}, _info(ids=None, name='voc_folder'), False, 'has no COCO category ids'),
    ({}, _info(FOLDER_NAMES + ('cat',), FOLDER_IDS + (95,)), False,
     r'has categories the model has no label for .*: 95 \(cat\)'),
    ({'category_ids': (1, 2)}, _info(), False,
     'has 2 ids for the 90 labels of config.input.class_names'),
    ({'category_ids': None}, _info(), False, 'config.input.class_names .* differ from'),
])
def test_label_space_mismatches_are_one_line(change, info, training, match):
  config = torchvision_ssd300.get_config()
  for key, value in change.items():
    config.input[key] = value
  with pytest.raises(errors.UserError, match=match):
    label_spaces.detection_label_map(config, info, training)


def test_the_data_sets_own_labels_need_no_map():
  config = default.get_config()
  config.input.class_names = FOLDER_NAMES
  assert label_spaces.detection_label_map(config, _info(), True) is None
  config.input.category_ids = FOLDER_IDS
  assert label_spaces.detection_label_map(config, _info(), True) is None


def _crafted_torchvision_state() -> dict:
  """Random weights; the box head outputs zero (detections are default boxes) and the class
  head favours car (3), then the unused id 12 ('N/A'), then person (1)."""
  state = random_state(torchvision_ssd300_shapes(), seed=5)
  for i, boxes in enumerate(b for _, b in convert.TV_SOURCES):
    state[f'head.regression_head.module_list.{i}.weight'][:] = 0
    state[f'head.regression_head.module_list.{i}.bias'][:] = 0
    state[f'head.classification_head.module_list.{i}.weight'][:] = 0
    bias = state[f'head.classification_head.module_list.{i}.bias'].reshape(boxes, 91)
    # Scores that differ by map and box shape: the square boxes of size sqrt(s_k s_k+1) first.
    ranks = np.where(np.arange(boxes) == 1, 0.2, -0.05 * np.arange(boxes)) + i * 0.01
    bias[:, 3], bias[:, 1], bias[:, 12] = 6.0 + ranks, 5.9 + ranks, 5.95 + ranks
  return state


@pytest.mark.slow
def test_eval_of_a_converted_torchvision_workdir_on_coco_folder_matches_pycocotools(
    tmp_path, monkeypatch):
  path = str(tmp_path / 'ssd300.safetensors')
  st.save_file(_crafted_torchvision_state(), path)
  workdir = str(tmp_path / 'run')
  convert.convert('torchvision-ssd300', path, workdir, torchvision_ssd300.get_config())
  folder = write_coco_folder(str(tmp_path / 'coco'))
  config = torchvision_ssd300.get_config()
  config.input.dataset, config.input.folder = 'coco_folder', folder
  config.input.data_dir = str(tmp_path / 'tfds')
  config.input.eval_batch_size, config.eval.num_images = 2, 2

  raw = []  # The model's detections, in its own labels (COCO ids), before any mapping.
  real_map = label_spaces.map_detections
  def record(detections, table):
    raw.append({k: np.array(v) for k, v in detections.items()})
    return real_map(detections, table)
  monkeypatch.setattr(label_spaces, 'map_detections', record)
  metrics = train.evaluate_checkpoint(config, workdir)

  with open(coco_folder.annotation_path(folder, 'val2017')) as f:
    gt = json.load(f)
  for ann in gt['annotations']:
    ann['area'] = ann['bbox'][2] * ann['bbox'][3]
  image_ids = [image['id'] for image in gt['images']]  # The folder's order: the eval order.
  results, labels = [], []
  for dets in raw:
    for i, image_id in enumerate(image_ids):
      for box, score, label in zip(dets['boxes'][i][dets['valid'][i]],
                                   dets['scores'][i][dets['valid'][i]],
                                   dets['classes'][i][dets['valid'][i]]):
        ymin, xmin, ymax, xmax = np.asarray(box, np.float64) * [50, 70, 50, 70]
        results.append({'image_id': image_id, 'category_id': int(label), 'score': float(score),
                        'bbox': [xmin, ymin, xmax - xmin, ymax - ymin]})
        labels.append(int(label))
  assert {3, 12} <= set(labels)  # Detections of a data set class and of an 'N/A' label.
  ground_truth = coco_lib.COCO()
  ground_truth.dataset = gt
  ground_truth.createIndex()
  evaluator = cocoeval.COCOeval(ground_truth, ground_truth.loadRes(results), 'bbox')
  evaluator.params.imgIds = image_ids
  evaluator.evaluate()
  evaluator.accumulate()
  evaluator.summarize()
  assert evaluator.stats[0] > 0.05  # Not a trivial 0 == 0.
  np.testing.assert_allclose(metrics['mAP'], evaluator.stats[0], rtol=1e-6)
  np.testing.assert_allclose(metrics['AP50'], evaluator.stats[1], rtol=1e-6)

  # Not the data of the workdir's config.json (COCO): a folder of its own, named by the data.
  assert not os.path.exists(os.path.join(workdir, 'eval', 'step_0.json'))
  [folder] = os.listdir(os.path.join(workdir, 'eval'))
  with open(os.path.join(workdir, 'eval', folder, 'step_0.json')) as f:
    written = json.load(f)
  assert folder == f"coco_folder-val2017-{written['data']['fingerprint'][:8]}"
  assert written['data']['num_images'] == 2
  # Rows are the data set's classes only; 'N/A' detections were dropped, none counted.
  assert written['num_ground_truth'] == {'person': 0, 'car': 2, 'train': 0}
  assert written['num_detections'] == {name: labels.count(c) for name, c in
                                       zip(FOLDER_NAMES, FOLDER_IDS)}
