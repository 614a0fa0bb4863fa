r"""Throughput of the forward pass, postprocessing and the full train step.

  python -m experiments.benchmark --config=configs/ssd300_voc.py [--batch_size=8] \
      [--iters=10] [--output=benchmark.json]

Times each compiled function on random inputs at the config's input size (fp32 unless the
config says otherwise), after one warm-up call, and prints the median images/s over `iters`
calls. The train step is the real one: forward, matcher, MultiBox loss, backward, SGD update.
"""

import json
import statistics
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from ssd_jax import anchors
from ssd_jax import models
from ssd_jax import postprocess
from ssd_jax import train

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program, so that other programs,
  e.g. experiments/sweep.py, can import `run`)."""
  config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=False)
  flags.DEFINE_integer('batch_size', 8, 'Images per step.')
  flags.DEFINE_integer('iters', 10, 'Timed calls per function (median reported).')
  flags.DEFINE_string('output', 'benchmark.json', 'Where to write the figures as JSON.')


def time_calls(fn, iters):
  """Median seconds per call of `fn()` (which must block until done) after one warm-up call."""
  fn()
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def random_batch(rng, batch_size, size, max_boxes, num_classes):
  low = rng.uniform(0, 0.7, (batch_size, max_boxes, 2))
  boxes = np.concatenate([low, low + rng.uniform(0.05, 0.3, (batch_size, max_boxes, 2))], -1)
  return {
      'image': rng.normal(size=(batch_size, size, size, 3)).astype(np.float32),
      'boxes': boxes.astype(np.float32),
      'labels': rng.integers(1, num_classes + 1, (batch_size, max_boxes)).astype(np.int32),
      'mask': np.arange(max_boxes)[None, :] < rng.integers(1, 8, (batch_size, 1)),
  }


def run(config, batch_size, iters):
  """Returns {'forward', 'postprocess', 'train_step'} images/s and the setup."""
  rng = np.random.default_rng(0)
  size = config.model.input_size
  batch = random_batch(rng, batch_size, size, config.input.max_boxes, config.model.num_classes)
  mesh = train.make_mesh()
  default_boxes = anchors.from_config(config)
  model = models.create_model(config.model, default_boxes.boxes_per_cell)
  # Replicated over the mesh, as the step returns it: the timed calls do not recompile.
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), mesh)
  priors = default_boxes.boxes
  train_step, _ = train.compile_steps(config, mesh, state.apply_fn, priors)
  batch = jax.device_put(batch)

  forward = jax.jit(state.apply_fn)
  variables = state.variables
  loc, conf = forward(variables, batch['image'])
  detect = jax.jit(lambda l, c: postprocess.detect_from_config(l, c, priors, config))
  results = {
      'forward': time_calls(lambda: jax.block_until_ready(forward(variables, batch['image'])),
                            iters),
      'postprocess': time_calls(lambda: jax.block_until_ready(detect(loc, conf)), iters),
  }
  holder = [state]  # the train step donates its state

  def step():
    holder[0], metrics = train_step(holder[0], batch)
    jax.block_until_ready(metrics)
  results['train_step'] = time_calls(step, iters)
  return {
      'images_per_s': {k: batch_size / v for k, v in results.items()},
      'seconds_per_batch': results,
      'batch_size': batch_size, 'input_size': size, 'dtype': config.model.dtype,
      'backend': jax.default_backend(), 'devices': jax.device_count(),
      'device_kind': jax.devices()[0].device_kind, 'iters': iters,
  }


def main(argv):
  del argv
  result = run(FLAGS.config, FLAGS.batch_size, FLAGS.iters)
  for name, value in result['images_per_s'].items():
    print(f'{name:<12} {value:10.2f} images/s  ({result["seconds_per_batch"][name] * 1e3:.1f} '
          f'ms per batch of {FLAGS.batch_size})')
  with open(FLAGS.output, 'w') as f:
    json.dump(result, f, indent=2)
  print(f'wrote {FLAGS.output}')


if __name__ == '__main__':
  define_flags()
  flags.mark_flags_as_required(['config'])
  app.run(main)
