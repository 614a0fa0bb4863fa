"""Model lookup: builds the SSD module a model config asks for, and its source-map sizes."""

import functools
from typing import Callable, Sequence

import jax.numpy as jnp
import ml_collections

from ssd_jax import anchors
from ssd_jax import errors
from ssd_jax.models.ssd import SSD, feature_map_sizes, source_names  # pylint: disable=unused-import

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def map_sizes_at(model_config: ml_collections.ConfigDict) -> Callable[[int], list[int]]:
  """input side -> side of each predicting source map of the model `config.model` describes
  (what `anchors.from_config` places default boxes on); UserError for a side too small."""
  return functools.partial(feature_map_sizes, model_config.arch,
                           num_sources=model_config.num_sources,
                           skip_sources=model_config.skip_sources,
                           conv3_source=model_config.conv3_source)


def default_boxes(config: ml_collections.ConfigDict) -> anchors.DefaultBoxes:
  """The run's default boxes: `anchors.from_config` on the source maps of `config.model`."""
  return anchors.from_config(config, map_sizes_at(config.model))


def create_model(model_config: ml_collections.ConfigDict, boxes_per_cell: Sequence[int],
                 num_classes: int) -> SSD:
  """The SSD module for `config.model` with `boxes_per_cell` default boxes per cell per map
  and `num_classes` object classes (`len(config.input.class_names)`).

  `boxes_per_cell` comes from the run's default boxes (`anchors.from_config`).
  """
  if model_config.dtype not in DTYPES:
    raise errors.UserError(
        f'model.dtype={model_config.dtype!r}; expected one of {sorted(DTYPES)}.')
  convs, channels = tuple(model_config.vgg_convs), tuple(model_config.vgg_channels)
  if len(convs) != 5 or len(channels) != 5 or min(convs) < 1 or min(channels) < 1:
    raise errors.UserError(f'model.vgg_convs={convs} and model.vgg_channels={channels} need 5 '
                           'positive entries each (blocks conv1 .. conv5).')
  if model_config.fc_channels < 1:
    raise errors.UserError(f'model.fc_channels={model_config.fc_channels}; it must be positive.')
  return SSD(
      num_classes=num_classes,
      boxes_per_cell=tuple(boxes_per_cell),
      arch=model_config.arch,
      width=model_config.width,
      l2norm_scale=model_config.l2norm_scale,
      norm=model_config.norm,
      skip_sources=model_config.skip_sources,
      vgg_convs=convs,
      vgg_channels=channels,
      fc_channels=model_config.fc_channels,
      conv3_source=model_config.conv3_source,
      dtype=DTYPES[model_config.dtype])
