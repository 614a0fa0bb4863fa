"""What a run sets up from a config, as train._setup does it: default boxes and the model."""

from ssd_jax import anchors
from ssd_jax import models


def default_boxes(config) -> anchors.DefaultBoxes:
  """The config's default boxes on its model's source maps."""
  return models.default_boxes(config)


def create_model(config) -> models.SSD:
  """The config's model, with its default boxes per cell and its class count."""
  return models.create_model(config.model, default_boxes(config).boxes_per_cell,
                             len(config.input.class_names))
