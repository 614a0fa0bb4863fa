r"""The accelerator benchmark suite in one process: JSON plus a markdown summary.

  python -m experiments.gpu.suite --output_dir=DIR [--configs=configs/ssd300_voc.py,...]
      [--dtypes=bfloat16,float32] [--train_batches=128,32] [--infer_batch=128] [--iters=10]
      [--budget_s=360]

For each config and dtype (in the order given: the most wanted first): the train step at each
of `train_batches`, inference with NMS at `infer_batch`, and batch-1 latency (inference with
NMS on one image), each the median of `iters` timed calls after two warm-up calls, on random
synthetic batches (experiments/benchmark.py). A run that would start after `budget_s` seconds
is skipped and listed as skipped, so the suite ends in time whatever the compile times; what
ran is written after every run (a suite that is killed keeps its figures).

Peak device memory is the process's peak so far (the runs share one process). MFU is against
the vendor's dense peak of the dtype (benchmark.PEAK_FLOPS); a float32 figure on a GPU whose
XLA uses TF32 for float32 convolutions can exceed what the fp32 peak suggests.
"""

import json
import os
import time

from absl import app
from absl import flags
import jax

from experiments import benchmark

FLAGS = flags.FLAGS
flags.DEFINE_string('output_dir', None, 'Folder for suite.json and summary.md.')
flags.DEFINE_list('configs', ['configs/ssd300_voc.py', 'configs/ssd512_voc.py'], 'Configs.')
flags.DEFINE_list('dtypes', ['bfloat16', 'float32'], 'Compute dtypes.')
flags.DEFINE_list('train_batches', ['128', '32'], 'Train step batch sizes.')
flags.DEFINE_integer('infer_batch', 128, 'Batch size of the inference (with NMS) figure.')
flags.DEFINE_integer('iters', 10, 'Timed calls per figure (median).')
flags.DEFINE_float('budget_s', 360.0, 'No run starts after this many seconds.')
flags.mark_flags_as_required(['output_dir'])


def plan(configs, dtypes, train_batches, infer_batch):
  """[(config path, dtype, batch, figure names)] in order."""
  runs = []
  for path in configs:
    for dtype in dtypes:
      runs.append((path, dtype, infer_batch, ['inference', 'inference_bs1']))
      runs += [(path, dtype, b, ['train_step']) for b in train_batches]
  return runs


def summary_markdown(rows, skipped, devices) -> str:
  lines = [f'# Benchmark suite on {devices}', '',
           '| config | dtype | batch | figure | images/s | ms/call | MFU | peak memory GiB |',
           '|---|---|---:|---|---:|---:|---:|---:|']
  for r in rows:
    lines.append(f"| {r['config']} | {r['dtype']} | {r['batch_size']} | {r['figure']} | "
                 f"{r['images_per_s']:.1f} | {r['ms_per_call']:.2f} | {100 * r['mfu']:.1f}% | "
                 f"{r['peak_memory_bytes'] / 2**30:.2f} |")
  if skipped:
    lines += ['', 'Skipped (time budget): ' + '; '.join(
        f'{c} {d} batch {b} {"+".join(n)}' for c, d, b, n in skipped)]
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  started = time.perf_counter()
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  devices = f'{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})'
  print(f'devices: {jax.devices()}', flush=True)
  rows, skipped, results = [], [], []
  for path, dtype, batch, names in plan(FLAGS.configs, FLAGS.dtypes,
                                        [int(b) for b in FLAGS.train_batches],
                                        FLAGS.infer_batch):
    if time.perf_counter() - started > FLAGS.budget_s:
      skipped.append((path, dtype, batch, names))
      continue
    config = benchmark.load_config(path)
    config.model.dtype = dtype
    run_started = time.perf_counter()
    result = benchmark.run(config, batch, FLAGS.iters, names=names)
    result['config'], result['wall_s'] = path, time.perf_counter() - run_started
    results.append(result)
    memory = result.get('device_peak_bytes_in_use', result.get('host_max_rss_bytes', 0))
    for name in names:
      rows.append({'config': os.path.basename(path)[:-3], 'dtype': dtype,
                   'batch_size': 1 if name == 'inference_bs1' else batch, 'figure': name,
                   'images_per_s': result['images_per_s'][name],
                   'ms_per_call': result['seconds_per_call'][name] * 1e3,
                   'mfu': result['mfu'][name], 'peak_memory_bytes': memory})
      print(f"{path} {dtype} batch {rows[-1]['batch_size']} {name}: "
            f"{rows[-1]['images_per_s']:.1f} images/s, {rows[-1]['ms_per_call']:.2f} ms "
            f"({result['wall_s']:.0f} s with compiles)", flush=True)
    doc = {'devices': devices, 'rows': rows, 'runs': results,
           'skipped': [list(s) for s in skipped], 'elapsed_s': time.perf_counter() - started}
    with open(os.path.join(FLAGS.output_dir, 'suite.json'), 'w') as f:
      json.dump(doc, f, indent=2)
  with open(os.path.join(FLAGS.output_dir, 'suite.json'), 'w') as f:
    json.dump({'devices': devices, 'rows': rows, 'runs': results,
               'skipped': [list(s) for s in skipped],
               'elapsed_s': time.perf_counter() - started}, f, indent=2)
  with open(os.path.join(FLAGS.output_dir, 'summary.md'), 'w') as f:
    f.write(summary_markdown(rows, skipped, devices))
  print(f'wrote {FLAGS.output_dir}/suite.json and summary.md in '
        f'{time.perf_counter() - started:.0f} s', flush=True)


if __name__ == '__main__':
  from ssd_jax import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
