"""The model's labels and the data set's, matched by COCO category id.

A config whose `input.category_ids` is None uses the data set's labels: its class names must
be the data set's. A config that sets it declares the COCO category id of each of its labels
(configs/torchvision_ssd300.py: label i is category i, 1..90, with 10 unused ids named 'N/A').
Evaluation then stays in the data set's label space (its class names, its ground truth, one
row per class it has) and each detection is given the data set's label of its category id;
detections of labels the data set has no category for (torchvision's 'N/A') are dropped, as
COCOeval ignores results of categories absent from the ground truth. Training needs the
model's labels to be the data set's.
"""

from typing import Sequence

import numpy as np

from ssd_jax import errors


def _check_size(class_names: Sequence[str], category_ids) -> None:
  if category_ids is not None and len(category_ids) != len(class_names):
    raise errors.UserError(f'config.input.category_ids has {len(category_ids)} ids for the '
                           f'{len(class_names)} labels of config.input.class_names.')


def detection_label_map(config, info, training: bool) -> np.ndarray | None:
  """Checks that `config`'s labels fit the data set `info`; returns the label map.

  Args:
    config: the run's config (reads input.class_names, input.category_ids).
    info: the data set's `input_pipeline.DatasetInfo` (class_names, category_ids, name).
    training: whether the run trains (then the labels must be the data set's).

  Returns:
    None when the model's labels are the data set's; else int32 [num_classes + 1]: the data
    set's label of each model label (0: background, or a category the data set lacks).

  Raises:
    UserError naming the mismatch.
  """
  names, ids = tuple(config.input.class_names), config.input.category_ids
  _check_size(names, ids)
  data_names, data_ids = tuple(info.class_names), info.category_ids
  if ids is None or (data_ids is not None and tuple(ids) == tuple(data_ids)):
    if names != data_names:
      raise errors.UserError(f'config.input.class_names {names} differ from the data set\'s '
                             f'{data_names}.')
    return None
  if training:
    raise errors.UserError(
        f'config.input.category_ids ({len(ids)} labels) is not the label space of data set '
        f'{info.name!r} ({len(data_names)} classes); training needs the data set\'s labels: '
        'set config.input.class_names to them and config.input.category_ids to None.')
  if data_ids is None:
    raise errors.UserError(f'config.input.category_ids is set but data set {info.name!r} has '
                           'no COCO category ids to match them with; evaluate on coco or '
                           'coco_folder data, or set config.input.category_ids to None.')
  label_of_id = {int(c): label for label, c in enumerate(ids, start=1)}
  missing = [f'{c} ({n})' for c, n in zip(data_ids, data_names) if int(c) not in label_of_id]
  if missing:
    raise errors.UserError(f'data set {info.name!r} has categories the model has no label for '
                           f'(config.input.category_ids): {", ".join(missing)}.')
  table = np.zeros(len(ids) + 1, np.int32)
  for data_label, c in enumerate(data_ids, start=1):
    table[label_of_id[int(c)]] = data_label
  return table


def map_detections(detections: dict, table: np.ndarray | None) -> dict:
  """Detections (classes [B, K] in the model's labels) -> the data set's labels; those with
  no data set label become invalid. `table` None returns them as they are."""
  if table is None:
    return detections
  classes = table[np.asarray(detections['classes'])]
  return {**detections, 'classes': classes,
          'valid': np.asarray(detections['valid'], bool) & (classes > 0)}
