r"""Where each variant of a sweep spends its time, all variants timed in one process, interleaved.

  python -m experiments.sweep_timing --config=configs/shapes.py --sweep=default_boxes \
      [--vary=<key>=<v1>,<v2>] [--batch_size=32] [--rounds=5] [--output=timing.json]

For each variant (the same variants as `experiments.sweep`, random weights), the compiled
calls of `experiments.benchmark.Steps` and one more:
  train_step    the real train step (matching and loss in it), ms per batch;
  inference     the eval step (every `eval.scales` scale, decoding, per-class NMS);
  forward       the model at its input size: base + extra layers + heads;
  base          the VGG16 base alone (`vgg.VGG16`, through fc7), on the same images;
  nms           decoding and per-class NMS on the forward's outputs (`postprocess`);
  matcher_loss  matcher + MultiBox loss at batch 32 (no backward).
After one warm-up call of each, every round times each call of each variant once, so that
load drift hits every variant alike; medians over the rounds. The NMS works on fixed shapes
(the top `eval.pre_nms_top_k` per class), so random weights cost it what trained ones do.
Run it on an otherwise idle machine: the point is the ratios between variants.
"""

import json
import os
import statistics
import time

from absl import flags
import jax
from ml_collections import config_flags

from experiments import benchmark
from experiments import sweep
from experiments import sweep_variants
from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax import errors
from ssd_jax import models
from ssd_jax.models import vgg

FLAGS = flags.FLAGS
CALLS = ('train_step', 'inference', 'forward', 'base', 'nms', 'matcher_loss')


def define_flags() -> None:
  config_flags.DEFINE_config_file('config', None, 'Base config file.', lock_config=True)
  flags.DEFINE_string('sweep', None, 'A sweep name or file, as experiments.sweep takes.')
  flags.DEFINE_string('vary', None, 'A one-key sweep, as experiments.sweep takes.')
  flags.DEFINE_integer('batch_size', None,
                       'Images per call; none: the config\'s input.batch_size.')
  flags.DEFINE_list('calls', list(CALLS), 'What to time (the train step of a large model '
                    'needs many GB).')
  flags.DEFINE_integer('rounds', 5, 'Timed rounds (each times every call of every variant).')
  flags.DEFINE_string('output', None, 'Also write the medians here as JSON.')
  flags.mark_flags_as_required(['config'])


def vgg_base(config) -> vgg.VGG16:
  """The VGG16 base of the config's model, as a module of its own."""
  model = models.create_model(config.model, models.default_boxes(config).boxes_per_cell,
                              len(config.input.class_names))
  return vgg.VGG16(model.width, model.l2norm_scale, model.norm, model.dtype,
                   tuple(model.vgg_convs), tuple(model.vgg_channels), model.fc_channels,
                   model.conv3_source)


def base_variables(variables: dict) -> dict:
  """The base's part of the model's variables."""
  return {kind: tree['vgg16'] for kind, tree in variables.items() if 'vgg16' in tree}


def base_call(steps: benchmark.Steps, config):
  """The VGG16 base of `steps`' model, alone, on its train images: a blocking call."""
  base = vgg_base(config)
  fn = jax.jit(lambda v, x: base.apply(v, x, False))
  variables, images = base_variables(steps.variables), steps.batch['image']
  return lambda: jax.block_until_ready(fn(variables, images))


def variant_calls(config, batch_size, names=CALLS):
  """{call name: blocking no-argument call} for one variant's config, for `names` only."""
  steps = benchmark.Steps(config, batch_size)
  renamed = {'nms': 'postprocess'}
  named = steps.calls([renamed.get(n, n) for n in names if n != 'base'])
  calls = {n: named[renamed.get(n, n)][0] for n in names if n != 'base'}
  if 'base' in names:
    calls['base'] = base_call(steps, config)
  return {name: calls[name] for name in names}


def time_variants(variants, batch_size: int, rounds: int, names=CALLS) -> dict:
  """{variant: {call: median seconds}}, variants and calls interleaved in every round."""
  calls = {}
  for name, _, config in variants:
    start = time.perf_counter()
    calls[name] = variant_calls(config, batch_size, names)
    for call in calls[name].values():  # Compile and warm up.
      call()
    print(f'{name}: compiled in {time.perf_counter() - start:.0f} s', flush=True)
  times = {name: {call: [] for call in named} for name, named in calls.items()}
  for _ in range(rounds):
    for name, named in calls.items():
      for call, fn in named.items():
        start = time.perf_counter()
        fn()
        times[name][call].append(time.perf_counter() - start)
  return {name: {call: statistics.median(t) for call, t in named.items()}
          for name, named in times.items()}


def table(variants, medians, batch_size: int) -> str:
  """The markdown table: ms per call and the forward's split ('-' for calls not timed)."""
  lines = [f'batch {batch_size} (matcher + loss at {benchmark.MATCHER_LOSS_BATCH}), medians '
           'in ms; load average at the end '
           f'{os.getloadavg()[0]:.2f}', '',
           '| variant | priors | train step | inference | images/s (train / inference) | '
           'forward | VGG16 base | base share of forward | extras + heads | NMS | '
           'matcher + loss |', '|' + '---|' * 11]
  for name, _, config in variants:
    m = {k: v * 1e3 for k, v in medians[name].items()}
    get = lambda key, m=m: f'{m[key]:.1f}' if key in m else '-'  # pylint: disable=g-long-lambda
    rate = lambda key, m=m: f'{batch_size / m[key] * 1e3:.1f}' if key in m else '-'
    share, rest = ((f"{m['base'] / m['forward']:.0%}", f"{m['forward'] - m['base']:.1f}")
                   if 'forward' in m and 'base' in m else ('-', '-'))
    priors = models.default_boxes(config).boxes.shape[0]
    lines.append(
        f"| {name} | {priors} | {get('train_step')} | {get('inference')} | "
        f"{rate('train_step')} / {rate('inference')} | {get('forward')} | {get('base')} | "
        f"{share} | {rest} | {get('nms')} | {get('matcher_loss')} |")
  return '\n'.join(lines)


def main(argv):
  del argv
  errors.run_command('experiments.sweep_timing', _run)


def _run():
  base = config_keys.from_command_line(FLAGS.config)
  chosen = sweep_variants.resolve_sweep(FLAGS.sweep, FLAGS.vary, base)
  _, variants = sweep.sweep_configs(base, chosen, None)
  batch_size = FLAGS.batch_size or base.input.batch_size
  unknown = sorted(set(FLAGS.calls) - set(CALLS))
  if unknown:
    raise errors.UserError(f'--calls: unknown {", ".join(unknown)}; some of {", ".join(CALLS)}.')
  medians = time_variants(variants, batch_size, FLAGS.rounds, tuple(FLAGS.calls))
  print(table(variants, medians, batch_size), flush=True)
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump({'batch_size': batch_size, 'rounds': FLAGS.rounds, 'seconds': medians,
                 'load_average': os.getloadavg(), 'jax': jax.__version__}, f, indent=1)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
