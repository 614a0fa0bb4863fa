"""VGG16 base network as in the Caffe SSD release (Liu et al. 2016, Sec. 3).

Differences from the ImageNet VGG16: every 2x2 max pool rounds up (Caffe's ceil mode, which
turns 75 into 38 at 300x300 input), pool5 is 3x3 / stride 1 / pad 1, and fc6/fc7 become
convolutions: conv6 is 3x3 with dilation 6 and 1024 channels, conv7 is 1x1 with 1024.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

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


# XLA:CPU computes the kernel gradient of the large convs (a convolution whose window is the
# whole feature map) far below its dot speed: conv2_2's (150x150, 128 -> 128) took 7x its
# forward pass. The same gradient as one dot per kernel tap, dY^T [O, B*H*W] times the tap's
# shifted input [B*H*W, I], is 1.5-4x faster for 3x3 convs on maps of at least 38x38 with
# >= 64 input and >= 128 output channels, and for 1x1 convs; XLA's stays faster for smaller
# maps, fewer output channels (the heads) and the narrow convs of small models
# (docs/results/performance.md). So only those convs use it, and only on CPU. The forward
# pass and the input gradient stay XLA's convolutions.


def kernel_grad_by_dots(x, dy, kernel_shape, padding):
  """Kernel gradient [kh, kw, I, O] of a stride-1 undilated NHWC conv: a dot per kernel tap."""
  (kh, kw), (h, w, o), i = kernel_shape[:2], dy.shape[1:], x.shape[-1]
  x = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  dy_t = dy.reshape(-1, o).T  # [O, B*H*W], transposed once for all taps.
  taps = jnp.stack([jnp.stack([dy_t @ x[:, r:r + h, c:c + w].reshape(-1, i) for c in range(kw)])
                    for r in range(kh)])  # [kh, kw, O, I]
  return jnp.swapaxes(taps, 2, 3)


def uses_dot_kernel_grad(kernel_shape, map_size) -> bool:
  """Whether a stride-1 undilated conv's kernel gradient on CPU is `kernel_grad_by_dots`."""
  kh, kw, in_channels, out_channels = kernel_shape
  return (kh, kw) == (1, 1) or (in_channels >= 64 and out_channels >= 128
                                and map_size[0] * map_size[1] >= 38 * 38)


def _conv(x, kernel, padding):
  return lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_with_dot_kernel_grad(x, kernel, padding):
  """`lax.conv_general_dilated` (NHWC, stride 1) whose kernel gradient is `kernel_grad_by_dots`."""
  return _conv(x, kernel, padding)


def _conv_fwd(x, kernel, padding):
  return _conv(x, kernel, padding), (x, kernel)


def _conv_bwd(padding, residuals, dy):
  x, kernel = residuals
  dx, = jax.vjp(lambda x: _conv(x, kernel, padding), x)[1](dy)
  return dx, kernel_grad_by_dots(x, dy, kernel.shape, padding).astype(kernel.dtype)


conv_with_dot_kernel_grad.defvjp(_conv_fwd, _conv_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None):
  """`lax.conv_general_dilated` for `nn.Conv`; on CPU the convs named above take the dots."""
  ones = lambda d: d is None or all(v == 1 for v in d)
  if (jax.default_backend() == 'cpu' and not isinstance(padding, str)
      and all(v == 1 for v in window_strides) and ones(lhs_dilation) and ones(rhs_dilation)
      and feature_group_count == 1 and precision is None
      and uses_dot_kernel_grad(rhs.shape, lhs.shape[1:3])):
    return conv_with_dot_kernel_grad(lhs, rhs, tuple(tuple(p) for p in padding))
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                  rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                  feature_group_count=feature_group_count, precision=precision)


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
                conv_general_dilated=conv_general_dilated, name='conv')(x)
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
