"""The embedded default: SSD on the synthetic shapes data, from scratch, on a laptop CPU.

Sized so that data generation, compilation, training and evaluation finish within about
10 minutes on 2 CPU cores (see README for the measured time and mAP).
"""

from configs import default
from ssd_jax.classes import SHAPES_CLASSES


def get_config():
  config = default.get_config()
  config.model.input_size = 128
  config.model.width = 0.125  # VGG16 channels 8 .. 64, fc 128: ~0.19 GFLOPs per image.
  config.model.norm = 'group'  # From scratch: GroupNorm after every base/extra conv.
  config.model.num_sources = 4  # maps 16, 8, 4, 2
  config.model.num_classes = len(SHAPES_CLASSES)
  # The paper's scale rule over 4 maps, with a smaller first scale for the small objects.
  config.anchors.min_sizes = config.anchors.max_sizes = config.anchors.steps = None
  config.anchors.s_min, config.anchors.s_max, config.anchors.first_scale = 0.15, 0.9, 0.07
  config.anchors.aspect_ratios = ((2,), (2, 3), (2, 3), (2,))

  config.input.dataset = 'shapes'
  config.input.class_names = SHAPES_CLASSES
  config.input.max_boxes = 16
  config.input.batch_size = 8  # Images/s on CPU hardly depend on it; more updates help.
  config.input.eval_batch_size = 50
  config.input.mean_rgb = (127.5, 127.5, 127.5)
  config.input.std_rgb = (64.0, 64.0, 64.0)  # From scratch: unit-scale inputs train faster.
  # The paper's zoom-out and crop make objects smaller and rarer. On this ~4-epoch CPU
  # schedule they hurt: 2400 steps gave mAP 0.0028 with them and 0.0225 without.
  config.input.augment.expand = False
  config.input.augment.random_crop = False

  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 2e-3
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_steps = 100
  config.optimizer.schedule = 'cosine'
  config.optimizer.grad_clip_norm = 10.0
  config.num_train_steps = 2800

  config.log_every_steps = 100
  config.eval.every_steps = 2800
  config.checkpoint_every_steps = 1000
  return config
