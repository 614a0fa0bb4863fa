r"""Ours and torchvision's SSD300 side by side, interleaved, on this machine.

  python -m experiments.compare_torchvision --torch_python=/work/torchenv/bin/python \
      [--config=configs/ssd300_voc.py] [--batch_size=8] [--rounds=3] [--calls=2] \
      [--figures=train_step,inference,matcher_loss] [--output=compare.json]

torchvision runs in its own environment as a subprocess (experiments/torchvision_benchmark.py
--serve). After both sides are warmed up, each round times `calls` calls of each figure on
torchvision, then on ours, then torchvision again at the end of all rounds, so load drift
hits both sides alike. Prints per-side medians, the ratio ours/torchvision and the load.
"""

import json
import os
import statistics
import subprocess
import time

import jax

from experiments import benchmark
from ssd_jax import config_keys
from ssd_jax import file_io

HERE = os.path.dirname(os.path.abspath(__file__))


class Torchvision:
  """The torchvision side, served by a subprocess in its own environment."""

  def __init__(self, python, batch_size, num_classes, extra_args=()):
    self.proc = subprocess.Popen(
        [python, os.path.join(HERE, 'torchvision_benchmark.py'), '--serve',
         f'--batch_size={batch_size}', f'--num_classes={num_classes}', *extra_args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    self.info = json.loads(self.proc.stdout.readline())

  def times(self, name, calls):
    self.proc.stdin.write(f'{name} {calls}\n')
    self.proc.stdin.flush()
    return json.loads(self.proc.stdout.readline())['seconds']

  def close(self):
    self.proc.stdin.close()
    self.proc.wait()


def ours_times(call, calls):
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return times


def compare(config, batch_size, torch_python, figures, rounds, calls):
  """{figure: {ours, torchvision (images/s medians), ratio, seconds}} and the loads."""
  tv = Torchvision(torch_python, batch_size, len(config.input.class_names) + 1)
  ours = benchmark.Steps(config, batch_size).calls()
  seconds = {f: {'ours': [], 'torchvision': []} for f in figures}
  loads = [os.getloadavg()]
  for f in figures:  # warm-up: compile ours, settle torch's allocator
    tv.times(f, 2)
    ours_times(ours[f][0], 2)
  for _ in range(rounds):
    for f in figures:
      seconds[f]['torchvision'] += tv.times(f, calls)
      seconds[f]['ours'] += ours_times(ours[f][0], calls)
    loads.append(os.getloadavg())
  for f in figures:
    seconds[f]['torchvision'] += tv.times(f, calls)
  tv.close()
  out = {}
  for f in figures:
    images = ours[f][1]
    ours_rate = images / statistics.median(seconds[f]['ours'])
    tv_rate = images / statistics.median(seconds[f]['torchvision'])
    out[f] = {'ours': ours_rate, 'torchvision': tv_rate, 'ratio': ours_rate / tv_rate,
              'seconds': seconds[f], 'images_per_call': images}
  return out, loads, tv.info


def main(argv):
  del argv
  config = config_keys.from_command_line(FLAGS.config)
  result, loads, info = compare(config, FLAGS.batch_size, FLAGS.torch_python, FLAGS.figures,
                                FLAGS.rounds, FLAGS.calls)
  print(f'{config.model.arch} batch {FLAGS.batch_size} ({config.model.dtype}); matcher_loss at '
        f'batch {benchmark.MATCHER_LOSS_BATCH}; torch threads {info["threads"]}, '
        f'jax {jax.__version__}; load averages ' + ', '.join(f'{l[0]:.2f}' for l in loads))
  for f, r in result.items():
    print(f'  {f:<14} ours {r["ours"]:9.2f}  torchvision {r["torchvision"]:9.2f} images/s  '
          f'ratio {r["ratio"]:.2f}x  ({len(r["seconds"]["ours"])} + '
          f'{len(r["seconds"]["torchvision"])} calls)')
  file_io.write_text(FLAGS.output, json.dumps(
      {'figures': result, 'load_averages': loads, 'batch_size': FLAGS.batch_size,
       'xla_flags': os.environ.get('XLA_FLAGS', ''), 'torch_threads': info['threads'],
       'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, indent=2))
  print(f'wrote {FLAGS.output}')


if __name__ == '__main__':
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from ssd_jax import cli  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', 'configs/ssd300_voc.py', 'Config file.',
                                  lock_config=False)
  flags.DEFINE_string('torch_python', '/work/torchenv/bin/python', 'Python with torchvision.')
  flags.DEFINE_integer('batch_size', 8, 'Images per call (matcher_loss: always 32).')
  flags.DEFINE_integer('rounds', 3, 'Interleaved rounds.')
  flags.DEFINE_integer('calls', 2, 'Timed calls per figure per side per round.')
  flags.DEFINE_list('figures', ['train_step', 'inference', 'matcher_loss'], 'Figures to compare.')
  flags.DEFINE_string('output', 'compare.json', 'Where to write the figures as JSON.')
  FLAGS = flags.FLAGS
  cli.run(main)
