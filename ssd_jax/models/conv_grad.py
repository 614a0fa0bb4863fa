"""The convs' kernel gradient on CPU as one dot per kernel tap (`conv_general_dilated`).

XLA:CPU computes the kernel gradient of the large convs (a convolution whose window is the
whole feature map) far below its dot speed: conv2_2's (150x150, 128 -> 128) took 7x its
forward pass. The same gradient as one dot per kernel tap, dY^T [O, B*H*W] times the tap's
shifted input [B*H*W, I], is 1.5-4x faster for 3x3 convs on maps of at least 38x38 with
>= 64 input and >= 128 output channels, and for 1x1 convs; XLA's stays faster for smaller
maps, fewer output channels (the heads) and the narrow convs of small models
(docs/results/performance.md). So only those convs use it, and only on CPU. The forward pass and
the input gradient stay XLA's convolutions.
"""

import functools

import jax
from jax import lax
import jax.numpy as jnp


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
  """`lax.conv_general_dilated` for `nn.Conv`; on CPU the convs `uses_dot_kernel_grad` picks
  take the dots."""
  ones = lambda d: d is None or all(v == 1 for v in d)
  if (jax.default_backend() == 'cpu' and not isinstance(padding, str)
      and all(v == 1 for v in window_strides) and ones(lhs_dilation) and ones(rhs_dilation)
      and feature_group_count == 1 and precision is None
      and uses_dot_kernel_grad(rhs.shape, lhs.shape[1:3])):
    return conv_with_dot_kernel_grad(lhs, rhs, tuple(tuple(p) for p in padding))
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                  rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                  feature_group_count=feature_group_count, precision=precision)
