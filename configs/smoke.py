"""A tiny configuration for tests: the real code paths at a size that runs in seconds."""

import ml_collections

from configs import default
from ssd_jax.classes import SHAPES_CLASSES


def get_config():
  config = default.get_config()
  config.model.input_size = 96
  config.model.width = 0.125
  config.model.num_sources = 4  # maps 12, 6, 3, 2
  # The scale rule; placeholders (None, of type tuple) so that --config.anchors.<key>='(...)'
  # can still set them.
  for key in ('min_sizes', 'max_sizes', 'steps'):
    config.anchors[key] = ml_collections.config_dict.placeholder(tuple)
  config.anchors.aspect_ratios = ((2,), (2, 3), (2, 3), (2,))
  config.input.dataset = 'shapes'
  config.input.shapes_num_train = 32  # A small generated shapes set (cached by tfds).
  config.input.shapes_num_validation = 8
  config.input.class_names = SHAPES_CLASSES
  config.input.max_boxes = 16
  config.input.shuffle_buffer = 32
  config.input.mean_rgb = (127.5, 127.5, 127.5)
  config.input.std_rgb = (64.0, 64.0, 64.0)
  config.input.batch_size = 4
  config.input.eval_batch_size = 4
  config.optimizer.warmup_steps = 2
  config.optimizer.boundaries = (6,)
  config.num_train_steps = 8
  config.log_every_steps = 2
  config.eval.every_steps = 4
  config.checkpoint_every_steps = 4
  config.keep_checkpoints = 2
  return config
