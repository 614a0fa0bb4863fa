"""The conv whose kernel gradient is a dot per tap (models/conv_grad.py) equals XLA's conv and its
gradients."""

import contextlib
import io

from absl.testing import absltest
from absl.testing import parameterized
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import profile_train
from ssd_jax.models import conv_grad
from ssd_jax.models import vgg
from tests import command_line


def reference_conv(x, kernel, padding):
  return lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


class ConvGradTest(parameterized.TestCase):

  @parameterized.parameters(((3, 3), ((1, 1), (1, 1))), ((3, 3), ((0, 0), (0, 0))),
                            ((1, 1), ((0, 0), (0, 0))), ((4, 4), ((1, 1), (1, 1))))
  def test_matches_xla_conv_and_gradients(self, kernel_size, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 7, 5)).astype(np.float32)
    kernel = rng.normal(size=(*kernel_size, 5, 6)).astype(np.float32)
    weights = rng.normal(size=reference_conv(x, kernel, padding).shape).astype(np.float32)
    loss = lambda conv: lambda x, kernel: jnp.sum(conv(x, kernel, padding) * weights)
    np.testing.assert_allclose(conv_grad.conv_with_dot_kernel_grad(x, kernel, padding),
                               reference_conv(x, kernel, padding), rtol=1e-5, atol=1e-5)
    got = jax.jit(jax.grad(loss(conv_grad.conv_with_dot_kernel_grad), (0, 1)))(x, kernel)
    want = jax.grad(loss(reference_conv), (0, 1))(x, kernel)
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)

  def test_conv_relu_matches_plain_conv(self):
    """Same outputs and gradients as a plain nn.Conv, on convs with and without the dots."""
    rng = np.random.default_rng(1)
    # (map side, in, out channels, kernel, whether the kernel gradient is the dots')
    for side, in_channels, out_channels, kernel, dots in (
        (38, 64, 128, 3, True), (6, 16, 8, 1, True), (6, 16, 8, 3, False),
        (6, 128, 128, 3, False)):
      self.assertEqual(conv_grad.uses_dot_kernel_grad((kernel, kernel, in_channels, out_channels),
                                                (side, side)), dots)
      x = rng.normal(size=(1, side, side, in_channels)).astype(np.float32)
      ours = vgg.ConvReLU(out_channels, kernel=kernel, padding=kernel // 2)
      plain = vgg.nn.Conv(out_channels, (kernel, kernel), padding=kernel // 2)
      params = ours.init(jax.random.PRNGKey(0), x)
      loss = lambda p, m: jnp.sum(jnp.square(m.apply(p, x)))
      plain_loss = lambda p: jnp.sum(jnp.square(jax.nn.relu(plain.apply(
          {'params': p['params']['conv']}, x))))
      np.testing.assert_allclose(loss(params, ours), plain_loss(params), rtol=1e-5)
      got = jax.grad(loss)(params, ours)['params']['conv']
      want = jax.grad(plain_loss)(params)['params']['conv']
      for k in ('kernel', 'bias'):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4)

  def test_profile_prints_both_kernel_gradients(self):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      profile_train.kernel_grad_costs(1, 1, convs=(('a', 38, 64, 128, 3), ('b', 8, 8, 8, 1),
                                                   ('c', 8, 8, 8, 3)))
    lines = out.getvalue().splitlines()
    self.assertLen(lines, 3)
    self.assertRegex(lines[0], r'^a .*XLA +[0-9.]+ ms, dots +[0-9.]+ ms; the model uses dots$')
    self.assertTrue(lines[1].endswith('uses dots'))
    self.assertTrue(lines[2].endswith('uses XLA'))

  @pytest.mark.slow
  def test_profile_unknown_part_is_one_line(self):
    result = command_line.run('experiments.profile_train', '--config=configs/smoke.py',
                              '--parts=forward,kernel_grad')
    command_line.assert_one_error_line(result, 'experiments.profile_train',
                                       r'--parts=forward,kernel_grad: expected some of forward')


if __name__ == '__main__':
  absltest.main()
