"""A tiny configuration for tests: the real code paths at a size that runs in seconds."""

from configs import default


def get_config():
  config = default.get_config()
  config.model.input_size = 96
  config.model.width = 0.125
  config.model.num_sources = 4  # maps 12, 6, 3, 2
  config.model.num_classes = 3
  config.anchors.min_sizes = config.anchors.max_sizes = config.anchors.steps = None
  config.anchors.aspect_ratios = ((2,), (2, 3), (2, 3), (2,))
  config.input.max_boxes = 8
  config.input.batch_size = 4
  config.input.eval_batch_size = 4
  config.optimizer.warmup_steps = 2
  config.optimizer.boundaries = (6,)
  config.num_train_steps = 8
  return config
