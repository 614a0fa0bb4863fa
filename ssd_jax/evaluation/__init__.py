"""Evaluation: PASCAL VOC AP (devkit rules) and COCO metrics (pycocotools).

- `VocEvaluator`, `CocoEvaluator`: accumulate the training loop's eval batches
  (`add_batch(batch, detections)`) and return `{name: value}` (`result()`).
- `evaluate_voc`, `coco_evaluate`: the scoring functions underneath; `devkit.py` holds the
  VOC devkit's matching, precision/recall and AP.
- `evaluate_files`: a detections json against a devkit folder or an instances json (the
  `python -m ssd_jax.evaluate` command).
- `format_table` / `print_table`: the per-class table. Metric names: see `result.py`.
"""

from ssd_jax.evaluation.coco import coco_evaluate
from ssd_jax.evaluation.coco import CocoEvaluator
from ssd_jax.evaluation.devkit import VocDetections
from ssd_jax.evaluation.devkit import VocGroundTruth
from ssd_jax.evaluation.files import evaluate_files
from ssd_jax.evaluation.files import VOC_CLASSES
from ssd_jax.evaluation.pixel_boxes import devkit_xyxy_to_yxyx
from ssd_jax.evaluation.pixel_boxes import yxyx_to_coco_xywh
from ssd_jax.evaluation.pixel_boxes import yxyx_to_devkit_xyxy
from ssd_jax.evaluation.result import EvalResult
from ssd_jax.evaluation.result import format_table
from ssd_jax.evaluation.result import print_table
from ssd_jax.evaluation.result import to_json_dict
from ssd_jax.evaluation.voc import evaluate_voc
from ssd_jax.evaluation.voc import VocEvaluator
