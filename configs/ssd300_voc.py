"""SSD300 on PASCAL VOC 07+12 trainval, evaluated on VOC2007 test: the paper's recipe.

The paper starts from ImageNet VGG16 with fc6/fc7 reduced to conv6/conv7 (77.2 mAP); from
scratch lands far lower. Convert the weights once and pass the folder (docs/weights.md):

  python -m ssd_jax.convert vgg16 --input=vgg16-397923af.pth --output=weights/vgg16
  python -m ssd_jax.main --config=configs/ssd300_voc.py --workdir=runs/voc \
      --config.init_from=weights/vgg16 --config.init_parts=base
"""

from configs import default


def get_config():
  return default.get_config()
