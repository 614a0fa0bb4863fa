"""`DatasetInfo`: what the training loop needs to know about a data set (no TensorFlow)."""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str  # config.input.dataset
  class_names: tuple  # class_names[i - 1] names label i.
  num_train_examples: Optional[int]  # None when tfds does not know (e.g. mock data).
  num_eval_examples: Optional[int]  # Whole eval split (before config.eval.num_images).
  train_split: str
  eval_split: str
  category_ids: Optional[tuple] = None  # COCO: label i -> category_ids[i - 1].
  folder: Optional[str] = None  # *_folder datasets.
  image_id_dtype: str = 'bytes'  # 'int64' (COCO ids) or 'bytes' (file stems).


# The (train, eval) splits of each tf.data data set, where config.input.*_split are None.
DEFAULT_SPLITS = {
    'voc': ('train+validation', 'test'),
    'coco': ('train', 'validation'),
    'shapes': ('train', 'validation'),
    'voc_folder': ('trainval', 'test'),
    'coco_folder': ('train2017', 'val2017'),
}
