"""SSD: VGG16 base, extra feature layers and the multibox heads (Liu et al. 2016, Fig. 2)."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssd_jax import errors
from ssd_jax.models import vgg

# Extra feature layers after conv7: (name, 1x1 channels, 3x3 channels, kernel, stride, pad).
# Each block is a 1x1 bottleneck then a kxk conv whose output is a source map.
EXTRA_LAYERS = {
    'ssd300': (
        ('conv8', 256, 512, 3, 2, 1),  # 19 -> 10
        ('conv9', 128, 256, 3, 2, 1),  # 10 -> 5
        ('conv10', 128, 256, 3, 1, 0),  # 5 -> 3
        ('conv11', 128, 256, 3, 1, 0),  # 3 -> 1
    ),
    'ssd512': (
        ('conv8', 256, 512, 3, 2, 1),  # 32 -> 16
        ('conv9', 128, 256, 3, 2, 1),  # 16 -> 8
        ('conv10', 128, 256, 3, 2, 1),  # 8 -> 4
        ('conv11', 128, 256, 3, 2, 1),  # 4 -> 2
        ('conv12', 128, 256, 4, 1, 1),  # 2 -> 1
    ),
}


def source_names(arch: str, conv3_source: bool = False) -> list[str]:
  """Names of all source maps of an architecture, in prior order."""
  return (['conv3'] * conv3_source + ['conv4_3', 'conv7']
          + [f'{name}_2' for name, *_ in EXTRA_LAYERS[arch]])


def feature_map_sizes(arch: str, input_size: int, num_sources: int | None = None,
                      skip_sources: int = 0, conv3_source: bool = False) -> list[int]:
  """Spatial size of each predicting source map (maps skip_sources .. num_sources - 1).

  Computed from the layer table; no model needed.
  """
  if arch not in EXTRA_LAYERS:
    raise errors.UserError(
        f'Unknown model.arch {arch!r}; expected one of {sorted(EXTRA_LAYERS)}.')
  sizes = list(vgg.base_map_sizes(input_size, conv3_source))
  n = sizes[-1]
  for name, _, _, kernel, stride, pad in EXTRA_LAYERS[arch]:
    n = (n + 2 * pad - kernel) // stride + 1
    sizes.append(n)
  num_sources = len(sizes) if num_sources is None else num_sources
  if not 1 <= num_sources <= len(sizes):
    raise errors.UserError(
        f'model.num_sources={num_sources} but {arch} has {len(sizes)} source maps.')
  sizes = sizes[:num_sources]
  if not 0 <= skip_sources < num_sources:
    raise errors.UserError(f'model.skip_sources={skip_sources} must be in 0..{num_sources - 1} '
                           f'(model.num_sources={num_sources}).')
  if min(sizes) < 1:
    names = source_names(arch, conv3_source)
    bad = [f'{names[i]}={s}' for i, s in enumerate(sizes) if s < 1]
    raise errors.UserError(
        f'model.input_size={input_size} is too small for {arch}: source maps {bad} would be '
        'empty. Use a larger input or fewer model.num_sources.')
  return sizes[skip_sources:]


class SSD(nn.Module):
  """Single Shot MultiBox Detector.

  Attributes:
    num_classes: object classes; the heads predict num_classes + 1 scores (0 = background).
    boxes_per_cell: default boxes per cell of each predicting source map (with skip_sources,
      sets the number of sources).
    skip_sources: how many of the finest source maps predict nothing (the paper's Table 3).
    vgg_convs, vgg_channels, fc_channels, conv3_source: the base (`vgg.VGG16`); VGG16's
      defaults.
  """
  num_classes: int
  boxes_per_cell: Sequence[int]
  arch: str = 'ssd300'
  width: float = 1.0
  l2norm_scale: float = 20.0
  norm: str | None = None  # None (the paper), 'group' or 'batch' (see vgg.ConvReLU).
  dtype: Any = jnp.float32
  skip_sources: int = 0
  vgg_convs: Sequence[int] = vgg.VGG16_CONVS
  vgg_channels: Sequence[int] = vgg.VGG16_CHANNELS
  fc_channels: int = vgg.FC_CHANNELS
  conv3_source: bool = False

  @nn.compact
  def __call__(self, images: jnp.ndarray,
               train: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Maps images [B, S, S, 3] to (loc [B, P, 4], conf logits [B, P, C + 1]) in float32.

    `train` only matters for norm='batch' (batch statistics instead of running averages).
    """
    x = images.astype(self.dtype)
    sources = list(vgg.VGG16(self.width, self.l2norm_scale, self.norm, self.dtype,
                             tuple(self.vgg_convs), tuple(self.vgg_channels), self.fc_channels,
                             self.conv3_source, name='vgg16')(x, train))
    x = sources[-1]
    num_sources = self.skip_sources + len(self.boxes_per_cell)
    for name, mid, out, kernel, stride, pad in EXTRA_LAYERS[self.arch]:
      if len(sources) >= num_sources:
        break
      x = vgg.ConvReLU(vgg.scaled(mid, self.width), kernel=1, padding=0, norm=self.norm,
                       dtype=self.dtype, name=f'{name}_1')(x, train)
      x = vgg.ConvReLU(vgg.scaled(out, self.width), kernel=kernel, strides=stride, padding=pad,
                       norm=self.norm, dtype=self.dtype, name=f'{name}_2')(x, train)
      sources.append(x)
    if len(sources) != num_sources:
      raise ValueError(f'{num_sources} source maps requested; {self.arch} has '
                       f'{len(sources)}.')
    sources = sources[self.skip_sources:]

    head = lambda ch, name: nn.Conv(ch, (3, 3), padding=1, kernel_init=vgg.conv_init,  # pylint: disable=g-long-lambda
                                    dtype=self.dtype, name=name)
    locs, confs = [], []
    for i, (source, k) in enumerate(zip(sources, self.boxes_per_cell)):
      batch = source.shape[0]
      # [B, H, W, k * 4] -> [B, H * W * k, 4]: cells row-major, then boxes within a cell.
      locs.append(head(k * 4, f'loc_{i}')(source).reshape(batch, -1, 4))
      confs.append(head(k * (self.num_classes + 1), f'conf_{i}')(source).reshape(
          batch, -1, self.num_classes + 1))
    return (jnp.concatenate(locs, axis=1).astype(jnp.float32),
            jnp.concatenate(confs, axis=1).astype(jnp.float32))
