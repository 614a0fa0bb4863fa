"""The embedded default: SSD on the synthetic shapes data, from scratch, on a laptop CPU.

Sized so that data generation, compilation, training and evaluation finish within about
10 minutes on 2 CPU cores. The measured time and mAP, and the runs behind each setting:
docs/results/shapes.md.
"""

import ml_collections

from configs import default
from ssd_jax.classes import SHAPES_CLASSES


def get_config():
  config = default.get_config()
  config.model.input_size = 128
  config.model.width = 0.125  # VGG16 channels 8 .. 64, fc 128: ~0.2 GFLOPs per image.
  # One conv in block 1: conv1_2 cost 17% of the step for 9% of the FLOPs.
  config.model.vgg_convs = (1, 2, 3, 3, 3)
  # From scratch: BatchNorm after every base/extra conv (statistics of the global batch).
  config.model.norm = 'batch'
  # SSD512's extra layers (all stride 2) give 5 maps at 128 px: 16, 8, 4, 2, 1.
  config.model.arch = 'ssd512'
  # Plus a stride-4 first map from block conv3 (32 x 32, 11 px boxes) for the small objects.
  config.model.conv3_source = True
  config.model.num_sources = 6
  # Default boxes fitted to this data (the paper, Sec. 2.2): larger than the paper's rule
  # gives at 128 px, (2, 3) ratios, a 0.3 matching threshold; {1, 2, 1/2} on the costly conv3
  # map. Sizes: the rule with s_min 0.33, s_max 1.0, first_scale 0.17, plus 11 px for conv3
  # (the rule's keys are kept for a run that sets min_sizes / max_sizes to None).
  config.anchors.s_min, config.anchors.s_max, config.anchors.first_scale = 0.33, 1.0, 0.17
  config.anchors.min_sizes = (11, 22, 42, 70, 99, 127)
  config.anchors.max_sizes = (22, 42, 70, 99, 127, 155)
  config.anchors.steps = ml_collections.config_dict.placeholder(tuple)  # input / map size.
  config.anchors.aspect_ratios = ((2,),) + ((2, 3),) * 5
  config.loss.iou_threshold = 0.3

  config.input.dataset = 'shapes'
  config.input.class_names = SHAPES_CLASSES
  config.input.max_boxes = 16
  config.input.batch_size = 8  # Images/s on CPU hardly depend on it; more updates help.
  config.input.eval_batch_size = 50
  config.input.mean_rgb = (127.5, 127.5, 127.5)
  config.input.std_rgb = (64.0, 64.0, 64.0)  # From scratch: unit-scale inputs train faster.
  # Flip only: zoom-out and crop make objects smaller and rarer, which hurts on this short
  # schedule; photometric distortion did not help (colours are random already).
  config.input.augment.photometric = False
  config.input.augment.expand = False
  config.input.augment.random_crop = False

  # The paper's optimizer (SGD, momentum 0.9, weight decay 5e-4 on kernels) at lr 0.03, a
  # 300-step warmup, then a linear decay to zero.
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 0.03
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_steps = 300
  config.optimizer.schedule = 'linear'
  config.optimizer.grad_clip_norm = 10.0  # SGD without it diverged at lr 0.03.
  config.num_train_steps = 3600

  # Multi-scale testing: the two finest maps also on the image at 224 px (small objects get
  # 3x the pixels), the four coarsest also at 96 px; one NMS over all.
  config.eval.scales = ((224, 0, 2), (128, 0, 6), (96, 2, 6))

  config.log_every_steps = 100
  config.eval.every_steps = 1200  # Three evaluations: the learning curve.
  config.checkpoint_every_steps = 1200
  return config
