"""Model lookup: builds the SSD module a config asks for."""

import jax.numpy as jnp
import ml_collections

from ssd_jax import anchors
from ssd_jax.models.ssd import SSD, feature_map_sizes, source_names  # pylint: disable=unused-import

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def create_model(config: ml_collections.ConfigDict) -> SSD:
  """The SSD module for `config.model`, with as many boxes per cell as `config.anchors` gives."""
  if config.model.dtype not in DTYPES:
    raise ValueError(f'model.dtype={config.model.dtype!r}; expected one of {sorted(DTYPES)}.')
  return SSD(
      num_classes=config.model.num_classes,
      boxes_per_cell=tuple(anchors.boxes_per_cell(config)),
      arch=config.model.arch,
      width=config.model.width,
      l2norm_scale=config.model.l2norm_scale,
      norm=config.model.norm,
      skip_sources=config.model.skip_sources,
      dtype=DTYPES[config.model.dtype])
