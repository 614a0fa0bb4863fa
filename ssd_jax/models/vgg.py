"""VGG16 base network as in the Caffe SSD release (Liu et al. 2016, Sec. 3).

Differences from the ImageNet VGG16: every 2x2 max pool rounds up (Caffe's ceil mode, which
turns 75 into 38 at 300x300 input), pool5 is 3x3 / stride 1 / pad 1, and fc6/fc7 become
convolutions: conv6 is 3x3 with dilation 6 and 1024 channels, conv7 is 1x1 with 1024.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssd_jax.models import conv_grad

# (block name, number of 3x3 convs, channels) for conv1 .. conv5.
VGG16_BLOCKS = (('conv1', 2, 64), ('conv2', 2, 128), ('conv3', 3, 256), ('conv4', 3, 512),
                ('conv5', 3, 512))
VGG16_CONVS = tuple(n for _, n, _ in VGG16_BLOCKS)  # (2, 2, 3, 3, 3)
VGG16_CHANNELS = tuple(c for _, _, c in VGG16_BLOCKS)  # (64, 128, 256, 512, 512)
FC_CHANNELS = 1024

conv_init = nn.initializers.xavier_uniform()  # Caffe SSD's 'xavier' filler.


def scaled(channels: int, width: float) -> int:
  """Channel count under a width multiplier (at least 8)."""
  return max(8, int(round(channels * width)))


# Max pools are written as elementwise maxima of shifted slices. The values equal
# `nn.max_pool`'s (tested), but the gradient is cheap elementwise selects instead of XLA's
# select-and-scatter, which made the whole train step ~3x slower on CPU.


def max_pool_ceil(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 / stride 2 max pool [B, H, W, C] that rounds the output size up, like Caffe."""
  x = jnp.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0)),
              constant_values=-jnp.inf)
  return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 1::2, 0::2]),
                     jnp.maximum(x[:, 0::2, 1::2], x[:, 1::2, 1::2]))


def max_pool_3x3_same(x: jnp.ndarray) -> jnp.ndarray:
  """3x3 / stride 1 / pad 1 max pool (SSD's pool5), separable: rows, then columns."""
  h, w = x.shape[1:3]
  x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
  rows = jnp.maximum(jnp.maximum(x[:, :, 0:w], x[:, :, 1:w + 1]), x[:, :, 2:w + 2])
  return jnp.maximum(jnp.maximum(rows[:, 0:h], rows[:, 1:h + 1]), rows[:, 2:h + 2])


def pooled_size(n: int) -> int:
  """Spatial size after `max_pool_ceil`."""
  return (n + 1) // 2


class L2Norm(nn.Module):
  """Channel-wise L2 normalization with a learned per-channel scale (ParseNet; SSD conv4_3)."""
  scale_init: float = 20.0
  eps: float = 1e-10

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    scale = self.param('scale', nn.initializers.constant(self.scale_init), (x.shape[-1],))
    x32 = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
    return (x32 / norm * scale).astype(x.dtype)

  def rsqrt_form(self, x: jnp.ndarray) -> jnp.ndarray:
    """`__call__` (bound, after init) as x * rsqrt(sum x^2 + eps), no division: what XLA
    compiles `__call__`'s forward to anyway (bit for bit on CPU). For int8 TFLite
    (`export_tflite`): its int8 DIV fails on a zero divisor, which an all-zero feature vector
    (a flat image area) gives, while its int8 RSQRT takes zero as the largest value."""
    x32 = x.astype(jnp.float32)
    inverse = jax.lax.rsqrt(jnp.sum(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
    return (x32 * inverse * self.get_variable('params', 'scale')).astype(x.dtype)


class ConvReLU(nn.Module):
  """Conv, optional normalization, ReLU.

  Normalization after every conv of the base and the extra layers is not in the paper; it is
  for training from scratch (ScratchDet, Zhu et al. 2019; He et al. 2019):
  `norm='group'`: GroupNorm (groups of >= 4 channels, at most 32 groups), no batch statistics;
  `norm='batch'`: BatchNorm; its statistics live in the 'batch_stats' collection and, under a
  jit sharded over the batch, are computed over the global batch (synchronized BN).
  """
  features: int
  kernel: int = 3
  strides: int = 1
  padding: int = 1
  dilation: int = 1
  norm: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    x = nn.Conv(self.features, (self.kernel, self.kernel), strides=self.strides,
                padding=self.padding, kernel_dilation=self.dilation, kernel_init=conv_init,
                use_bias=self.norm is None, dtype=self.dtype,
                conv_general_dilated=conv_grad.conv_general_dilated, name='conv')(x)
    if self.norm == 'group':
      x = nn.GroupNorm(num_groups=max(1, min(32, self.features // 4)), dtype=self.dtype,
                       name='norm')(x)
    elif self.norm == 'batch':
      x = nn.BatchNorm(use_running_average=not train, momentum=0.99, dtype=self.dtype,
                       name='norm')(x)
    elif self.norm is not None:
      raise ValueError(f"model.norm={self.norm!r}; expected None, 'group' or 'batch'.")
    return nn.relu(x)


class VGG16(nn.Module):
  """Returns the SSD source maps of the base: ([conv3,] L2-normalized conv4_3, conv7).

  `convs` and `channels` (per block conv1 .. conv5) and `fc_channels` (conv6, conv7) default
  to VGG16; other values give a VGG-style base of another depth and channel profile, whose
  layers keep VGG16's names (block `convK` has convK_1 .. convK_n). `conv3_source` also returns
  the last conv of block 3 (stride 4), L2-normalized like conv4_3, as a finer first map.
  """
  width: float = 1.0
  l2norm_scale: float = 20.0
  norm: str | None = None
  dtype: Any = jnp.float32
  convs: Sequence[int] = VGG16_CONVS
  channels: Sequence[int] = VGG16_CHANNELS
  fc_channels: int = FC_CHANNELS
  conv3_source: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> Sequence[jnp.ndarray]:
    conv = lambda ch, name, **kw: ConvReLU(  # pylint: disable=g-long-lambda
        scaled(ch, self.width), norm=self.norm, dtype=self.dtype, name=name, **kw)
    sources = []
    for b, (num_convs, channels) in enumerate(zip(self.convs, self.channels)):
      block = f'conv{b + 1}'
      for i in range(num_convs):
        x = conv(channels, f'{block}_{i + 1}')(x, train)
      if block == 'conv3' and self.conv3_source:
        sources.append(L2Norm(self.l2norm_scale, name='conv3_norm')(x))
      if block == 'conv4':
        sources.append(L2Norm(self.l2norm_scale, name='conv4_3_norm')(x))
      if block != 'conv5':
        x = max_pool_ceil(x)
    x = max_pool_3x3_same(x)  # pool5
    x = conv(self.fc_channels, 'conv6', padding=6, dilation=6)(x, train)
    x = conv(self.fc_channels, 'conv7', kernel=1, padding=0)(x, train)
    return (*sources, x)


def base_map_sizes(input_size: int, conv3_source: bool = False) -> tuple[int, ...]:
  """Spatial sizes of ([conv3,] conv4_3, conv7) for a square input."""
  conv3 = pooled_size(pooled_size(input_size))  # pool1, pool2
  conv4_3 = pooled_size(conv3)
  sizes = (conv3, conv4_3) if conv3_source else (conv4_3,)
  return (*sizes, pooled_size(conv4_3))  # pool4; pool5, conv6 and conv7 keep the size.
