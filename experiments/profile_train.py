r"""Where the train step's time goes: its parts timed separately on one synthetic batch.

  XLA_FLAGS=... python -m experiments.profile_train --config=configs/ssd300_voc.py \
      [--batch_size=8] [--iters=3] [--parts=forward,backward,loss,train_step]

Parts: `forward` (the model), `backward` (forward + gradient of a sum of the heads' outputs:
the model's backward without the loss), `loss` (matcher + MultiBox loss and its gradient
w.r.t. the heads' outputs), `train_step` (the real one). Prints median seconds per batch and
XLA's FLOP estimate of each.
`--parts=convs` times single representative convs forward and backward instead. Run with different XLA_FLAGS to compare backend options.
`--parts=kernel_grads` times XLA's kernel gradient against `conv_grad.kernel_grad_by_dots` for the
stride-1 convs of SSD300 (the table behind `conv_grad.uses_dot_kernel_grad`).
"""

from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from experiments import benchmark
from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax import errors
from ssd_jax import losses
from ssd_jax import models
from ssd_jax import train
from ssd_jax.models import conv_grad


def parts(config, batch_size):
  """{name: (jitted fn, args)} for each part of the train step."""
  batch = benchmark.synthetic_batch(config, batch_size)
  default_boxes = models.default_boxes(config)
  priors = jnp.asarray(default_boxes.boxes)
  model = models.create_model(config.model, default_boxes.boxes_per_cell,
                              len(config.input.class_names))
  state = train.create_train_state(config, model, jax.random.PRNGKey(0))
  variables = state.variables
  loc, conf = jax.jit(state.apply_fn)(variables, batch['image'])

  def model_sum(params, image):
    loc, conf = state.apply_fn({**variables, 'params': params}, image)
    return jnp.sum(loc) + jnp.sum(conf)

  def loss(loc, conf, batch):
    return losses.ssd_loss(loc, conf, batch, priors, config.loss)[0]

  train_fn, _ = train.compile_steps(config, train.make_mesh(), state.apply_fn, default_boxes)
  return {
      'forward': (jax.jit(state.apply_fn), (variables, batch['image'])),
      'backward': (jax.jit(jax.grad(model_sum)), (variables['params'], batch['image'])),
      'loss': (jax.jit(jax.value_and_grad(loss, (0, 1))), (loc, conf, batch)),
      'train_step': (lambda s, b: train_fn(s, b)[1], (state, batch)),
  }, train_fn


# Representative SSD300 convs (name, input side, in, out channels, kernel, dilation).
CONVS = (('conv1_2', 300, 64, 64, 3, 1), ('conv2_2', 150, 128, 128, 3, 1),
         ('conv3_3', 75, 256, 256, 3, 1), ('conv4_3', 38, 512, 512, 3, 1),
         ('conv5_3', 19, 512, 512, 3, 1), ('conv6', 19, 512, 1024, 3, 6),
         ('conv7', 19, 1024, 1024, 1, 1))


def conv_costs(batch_size, iters):
  """Forward and forward + backward (input and kernel gradients) of single convs."""
  for name, size, cin, cout, k, dilation in CONVS:
    x = jnp.ones((batch_size, size, size, cin), jnp.float32)
    w = jnp.ones((k, k, cin, cout), jnp.float32) * 1e-3
    pad = dilation * (k // 2)

    def conv(x, w, dilation=dilation, pad=pad):
      return jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad)] * 2,
                                          rhs_dilation=(dilation,) * 2,
                                          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    fwd = jax.jit(conv)
    bwd = jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w)), (0, 1)))
    t_f = benchmark.time_calls(lambda: jax.block_until_ready(fwd(x, w)), iters, warmup=1)
    t_b = benchmark.time_calls(lambda: jax.block_until_ready(bwd(x, w)), iters, warmup=1)
    gflop = 2 * batch_size * size * size * k * k * cin * cout / 1e9
    print(f'{name:<8} fwd {t_f * 1e3:8.1f} ms ({gflop / t_f:6.1f} GFLOP/s)  fwd+bwd '
          f'{t_b * 1e3:8.1f} ms ({3 * gflop / t_b:6.1f} GFLOP/s)  bwd/fwd '
          f'{(t_b - t_f) / t_f:4.1f}', flush=True)


# Stride-1 undilated convs of SSD300 (and one of the shapes config) for `kernel_grads`:
# (name, map side, in, out channels, kernel).
KERNEL_GRAD_CONVS = (
    ('conv1_1', 300, 3, 64, 3), ('conv1_2', 300, 64, 64, 3), ('conv2_1', 150, 64, 128, 3),
    ('conv2_2', 150, 128, 128, 3), ('conv3_1', 75, 128, 256, 3), ('conv3_2', 75, 256, 256, 3),
    ('conv4_1', 38, 256, 512, 3), ('conv4_2', 38, 512, 512, 3), ('conv5_2', 19, 512, 512, 3),
    ('head4_3', 38, 512, 100, 3), ('head_fc7', 19, 1024, 150, 3), ('conv7', 19, 1024, 1024, 1),
    ('conv8_1', 19, 1024, 256, 1), ('shapes1_2', 128, 8, 8, 3))


def kernel_grad_costs(batch_size, iters, convs=KERNEL_GRAD_CONVS):
  """XLA's kernel gradient against `conv_grad.kernel_grad_by_dots`, and which one the model uses."""
  rng = np.random.default_rng(0)
  for name, size, cin, cout, k in convs:
    x = jnp.asarray(rng.normal(size=(batch_size, size, size, cin)), jnp.float32)
    dy = jnp.asarray(rng.normal(size=(batch_size, size, size, cout)), jnp.float32)
    padding = ((k // 2, k // 2),) * 2
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), padding,
                                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    xla = jax.jit(lambda x, dy: jax.vjp(lambda w: conv(x, w),
                                        jnp.zeros((k, k, cin, cout)))[1](dy)[0])
    dots = jax.jit(lambda x, dy: conv_grad.kernel_grad_by_dots(x, dy, (k, k), padding))
    t_xla, t_dots = (benchmark.time_calls(lambda f=f: jax.block_until_ready(f(x, dy)), iters,
                                          warmup=1) for f in (xla, dots))
    used = 'dots' if conv_grad.uses_dot_kernel_grad((k, k, cin, cout), (size, size)) else 'XLA'
    print(f'{name:<9} ({size}, {cin} -> {cout}, {k}x{k}) kernel gradient: XLA '
          f'{t_xla * 1e3:8.1f} ms, dots {t_dots * 1e3:8.1f} ms; the model uses {used}',
          flush=True)


PARTS = ('forward', 'backward', 'loss', 'train_step')


def main(argv):
  del argv
  errors.run_command('experiments.profile_train', _run)


def _run():
  config = config_keys.from_command_line(FLAGS.config)
  if FLAGS.parts not in (['convs'], ['kernel_grads']) and not set(FLAGS.parts) <= set(PARTS):
    raise errors.UserError(f'--parts={",".join(FLAGS.parts)}: expected some of '
                           f'{", ".join(PARTS)}, or convs or kernel_grads alone.')
  if FLAGS.parts == ['convs']:
    conv_costs(FLAGS.batch_size, FLAGS.iters)
    return
  if FLAGS.parts == ['kernel_grads']:
    kernel_grad_costs(FLAGS.batch_size, FLAGS.iters)
    return
  fns, train_fn = parts(config, FLAGS.batch_size)
  for name in FLAGS.parts:
    fn, args = fns[name]
    if name == 'train_step':  # donates its state: thread it through
      holder = [args[0]]

      def call():
        holder[0], metrics = train_fn(holder[0], args[1])
        return metrics
      flops = benchmark.flops_of(train_fn, *args)
    else:
      call = lambda fn=fn, args=args: fn(*args)
      flops = benchmark.flops_of(fn, *args)
    seconds = benchmark.time_calls(lambda: jax.block_until_ready(call()), FLAGS.iters)
    print(f'{name:<11} {seconds * 1e3:9.1f} ms/batch  {flops / 1e9:8.1f} GFLOP  '
          f'{flops / seconds / 1e9:7.1f} GFLOP/s', flush=True)


if __name__ == '__main__':
  config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=False)
  flags.DEFINE_integer('batch_size', 8, 'Images per step.')
  flags.DEFINE_integer('iters', 3, 'Timed calls per part (median).')
  flags.DEFINE_list('parts', list(PARTS), 'Parts to time.')
  FLAGS = flags.FLAGS
  flags.mark_flags_as_required(['config'])
  cli.define_verbose()
  cli.run(main)
