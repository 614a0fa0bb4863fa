"""SSD300 on PASCAL VOC 07+12 trainval, evaluated on VOC2007 test: the paper's recipe."""

from configs import default


def get_config():
  return default.get_config()
