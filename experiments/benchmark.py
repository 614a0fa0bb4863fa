r"""Throughput of the train step, inference and their parts, on synthetic batches.

  python -m experiments.benchmark --config=configs/ssd300_voc.py [--batch_size=8] \
      [--dtype=float32|bfloat16] [--iters=5] [--input_batches=20] [--input_dataset=shapes] \
      [--scaling=configs/ssd300_voc.py,configs/ssd512_voc.py] [--scaling_batches=1,8,32] \
      [--output=benchmark.json]

Figures, as images/s under `images_per_s` in the JSON (median over `iters` timed calls after
two warm-up calls; the device figures use random inputs at the config's input size):
  train_step     forward, matcher, MultiBox loss, backward, optimizer update (one jit);
  inference      forward + postprocessing (decode, per-class top-k, NMS) as one jitted call:
                 the config's eval step (with `eval.scales`, every scale, on images at the
                 largest);
  inference_bs1  the same at batch 1 (and `latency_ms_bs1`);
  forward        the model alone; postprocess: detection output alone on fixed head outputs;
  matcher_loss   matcher + MultiBox loss (value only) at batch 32 on random head outputs;
  input          the config's train input on the host: the tf.data pipeline (decode +
                 augment + batch), or with --input_dataset=synthetic the in-memory random
                 batches (no TensorFlow; then the figure is only the loop's overhead):
                 images/s, images per CPU-second (per core), and the host cores that the
                 measured train rate and a 2,000 images/s GPU would need. Skipped, with one
                 line saying why, where the data is not here (nothing is downloaded).
Also peak memory (the device's peak where the backend reports it, else the host's max RSS),
XLA's FLOP count of each compiled call and the model FLOP utilisation against a stated peak
(CPU: a measured 4096x4096 fp32 matmul; GPUs: the vendor's dense peak for the dtype).
`--scaling` adds train and inference images/s for each listed config at each batch size.
"""

import importlib.util
import json
import os
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from ssd_jax import anchors
from ssd_jax import config_keys
from ssd_jax import errors
from ssd_jax import file_io
from ssd_jax import losses
from ssd_jax import models
from ssd_jax import postprocess
from ssd_jax import train
from ssd_jax.data import sources
from ssd_jax.data import synthetic

MATCHER_LOSS_BATCH = 32
GPU_TARGET_IMAGES_PER_S = 2000.0  # The GPU train rate the input pipeline must feed.
# Vendor dense peak FLOP/s per device kind substring, by compute dtype (no sparsity).
PEAK_FLOPS = {
    'H200': {'float32': 67e12, 'bfloat16': 989e12},
    'H100': {'float32': 67e12, 'bfloat16': 989e12},
    'A100': {'float32': 19.5e12, 'bfloat16': 312e12},
}


def time_calls(fn, iters, warmup=2):
  """Median seconds per call of `fn()` (which must block until done) after `warmup` calls."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def synthetic_batch(config, batch_size, seed=0, size=None):
  """A random train batch (`synthetic.random_batch`, the train step's keys) at the config's
  input size (or `size`), max_boxes and classes."""
  batch = synthetic.random_batch(np.random.default_rng(seed), batch_size,
                                 size or config.model.input_size, config.input.max_boxes,
                                 len(config.input.class_names))
  return {k: batch[k] for k in train.STEP_KEYS}


def flops_of(jitted, *args):
  """XLA's FLOP estimate of the compiled `jitted(*args)` (0 if the backend gives none)."""
  cost = jitted.lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get('flops', 0.0))


def peak_memory():
  """(kind, bytes): the device's peak bytes in use where reported, else the host's max RSS."""
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return 'device_peak_bytes_in_use', int(stats['peak_bytes_in_use'])
  return 'host_max_rss_bytes', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def device_peak_flops(dtype, stated=None):
  """(FLOP/s, how it was obtained) that MFU is measured against; `stated` FLOP/s wins."""
  if stated:
    return stated, 'stated on the command line (--peak_gflops)'
  kind = jax.devices()[0].device_kind
  for name, peaks in PEAK_FLOPS.items():
    if name in kind:
      return peaks[dtype], f'{name} dense {dtype} peak (vendor data sheet)'
  n = 4096 if jax.default_backend() == 'cpu' else 8192
  a = jnp.ones((n, n), jnp.float32)
  matmul = jax.jit(lambda a: a @ a)
  seconds = time_calls(lambda: jax.block_until_ready(matmul(a)), 3, warmup=1)
  return 2 * n**3 / seconds, f'measured {n}x{n} fp32 matmul on this device'


def input_rate(config, num_batches, warmup=3):
  """The config's train input on this host (the tf.data pipeline, or the synthetic source):
  images/s and images per CPU-second."""
  it = sources.train_batches(config, process_index=0, process_count=1)
  for _ in range(warmup):
    next(it)
  start, cpu = time.perf_counter(), time.process_time()
  for _ in range(num_batches):
    next(it)
  seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
  images = num_batches * config.input.batch_size
  return {'dataset': config.input.dataset, 'images_per_s': images / seconds,
          'images_per_cpu_second': images / max(cpu, 1e-9),
          'cores': len(os.sched_getaffinity(0)), 'batches': num_batches,
          'batch_size': config.input.batch_size}


class Steps:
  """The compiled functions the benchmark times, with their inputs (one config and batch)."""

  def __init__(self, config, batch_size):
    self.config, self.batch_size = config, batch_size
    default_boxes = models.default_boxes(config)
    self.priors = jnp.asarray(default_boxes.boxes)
    model = models.create_model(config.model, default_boxes.boxes_per_cell,
                                len(config.input.class_names))
    mesh = train.make_mesh()
    # Replicated over the mesh, as the train step returns it: the timed calls do not recompile.
    self.state = train.create_train_state(config, model, jax.random.PRNGKey(0), mesh)
    # A copy: the train step donates (deletes) the state's buffers.
    self.variables = jax.tree.map(jnp.copy, self.state.variables)
    self.batch = jax.device_put(synthetic_batch(config, batch_size))
    self.train_fn, _ = train.compile_steps(config, mesh, self.state.apply_fn, default_boxes)
    apply_fn, priors = self.state.apply_fn, self.priors
    self.forward = jax.jit(apply_fn)
    self.detect = jax.jit(lambda l, c: postprocess.detect_from_config(l, c, priors, config))
    # What evaluation runs: with `eval.scales`, every scale on images at the largest size.
    eval_step = train.eval_step_fn(config, apply_fn, default_boxes)
    self.inference = jax.jit(lambda v, images: eval_step(v, {'image': images}))
    # The train batch's images when evaluation runs at the model's size.
    self.eval_images = jnp.asarray(synthetic_batch(
        config, batch_size, size=anchors.eval_input_size(config))['image'])
    self.matcher_loss = jax.jit(
        lambda loc, conf, batch: losses.ssd_loss(loc, conf, batch, priors, config.loss))

  def head_outputs(self, batch_size, seed=1):
    """Random (loc [B, P, 4], conf logits [B, P, C + 1]) like an untrained model's."""
    rng = np.random.default_rng(seed)
    num_priors, num_scores = self.priors.shape[0], len(self.config.input.class_names) + 1
    return (jnp.asarray(rng.normal(0, 0.5, (batch_size, num_priors, 4)), jnp.float32),
            jnp.asarray(rng.normal(0, 1, (batch_size, num_priors, num_scores)), jnp.float32))

  def train_call(self):
    """A no-argument train step (threads the donated state) and its FLOP count."""
    flops = flops_of(self.train_fn, self.state, self.batch)
    holder = [self.state]

    def call():
      holder[0], metrics = self.train_fn(holder[0], self.batch)
      jax.block_until_ready(metrics)
    return call, flops

  def calls(self, names=None):
    """{name: (no-argument blocking call, images per call, FLOPs per call)} for `names`
    (default: every figure); only those are compiled."""
    images = self.batch['image']
    block = jax.block_until_ready
    v, b = self.variables, self.batch_size

    def forward():
      return (lambda: block(self.forward(v, images)), b, flops_of(self.forward, v, images))

    def postprocess():
      loc, conf = self.forward(v, images)
      return (lambda: block(self.detect(loc, conf)), b, flops_of(self.detect, loc, conf))

    def inference():
      eval_images = self.eval_images
      return (lambda: block(self.inference(v, eval_images)), b,
              flops_of(self.inference, v, eval_images))

    def inference_bs1():
      image1 = self.eval_images[:1]
      return (lambda: block(self.inference(v, image1)), 1,
              flops_of(self.inference, v, image1))

    def matcher_loss():
      mloc, mconf = self.head_outputs(MATCHER_LOSS_BATCH)
      mbatch = jax.device_put(synthetic_batch(self.config, MATCHER_LOSS_BATCH, seed=2))
      mbatch.pop('image')
      return (lambda: block(self.matcher_loss(mloc, mconf, mbatch)), MATCHER_LOSS_BATCH,
              flops_of(self.matcher_loss, mloc, mconf, mbatch))

    def train_step():
      train_call, train_flops = self.train_call()
      return train_call, b, train_flops

    makers = {'forward': forward, 'postprocess': postprocess, 'inference': inference,
              'inference_bs1': inference_bs1, 'matcher_loss': matcher_loss,
              'train_step': train_step}
    # The train step last: it donates (deletes) the state the others do not use.
    ordered = [n for n in makers if n in (names or makers)]
    return {n: makers[n]() for n in ordered}


def run(config, batch_size, iters, *, input_batches=0, input_config=None, names=None,
        peak_flops=None, mfu=True):
  """Times every figure (or `names`); returns a dict with 'images_per_s' and the setup.

  `input_batches` > 0 also times the train input pipeline of `input_config` (default:
  `config`) over that many batches, if its data is here: else one line says why, and
  'input_skipped' in the result too. MFU is against `peak_flops` (FLOP/s) if given, else
  the vendor peak for known GPUs, else a matmul measured now (noisy on a shared machine);
  `mfu=False` skips it.
  """
  skipped = None
  if input_batches:
    skipped = sources.missing_data(input_config or config)
    if skipped:
      print(f'input figure skipped: {skipped}.', flush=True)
  steps = Steps(config, batch_size)
  calls = steps.calls(names)
  names = names or list(calls)
  seconds, flops = {}, {}
  for name in names:
    call, _, flops[name] = calls[name]
    seconds[name] = time_calls(call, iters)
  images_per_s = {n: calls[n][1] / seconds[n] for n in names}
  dtype = config.model.dtype
  peak, peak_source = device_peak_flops(dtype, peak_flops) if mfu else (float('nan'), None)
  memory_kind, memory_bytes = peak_memory()
  result = {
      'images_per_s': images_per_s,
      'seconds_per_call': seconds,
      'gflop_per_call': {n: flops[n] / 1e9 for n in names},
      'mfu': {n: flops[n] / seconds[n] / peak for n in names},
      'peak_flop_per_s': peak, 'peak_source': peak_source,
      memory_kind: memory_bytes,
      'batch_size': batch_size, 'matcher_loss_batch_size': MATCHER_LOSS_BATCH,
      'input_size': config.model.input_size, 'arch': config.model.arch, 'dtype': dtype,
      'backend': jax.default_backend(), 'devices': jax.device_count(),
      'device_kind': jax.devices()[0].device_kind, 'iters': iters,
      'jax_version': jax.__version__, 'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'load_average': os.getloadavg(),
  }
  if 'inference_bs1' in seconds:
    result['latency_ms_bs1'] = seconds['inference_bs1'] * 1e3
  if skipped:
    result['input_skipped'] = skipped
  elif input_batches:
    rate = input_rate(input_config or config, input_batches)
    per_core = rate['images_per_cpu_second']
    if 'train_step' in images_per_s:
      rate['cores_for_measured_train_rate'] = images_per_s['train_step'] / per_core
    rate['cores_for_gpu_target'] = GPU_TARGET_IMAGES_PER_S / per_core
    result['input'] = rate
    images_per_s['input'] = rate['images_per_s']
  return result


def scaling(configs, batch_sizes, iters, dtype):
  """Train and inference images/s for each {name: config} at each batch size."""
  rows = []
  for name, config in configs.items():
    config = config.copy_and_resolve_references()
    config.model.dtype = dtype
    for batch_size in batch_sizes:
      result = run(config, batch_size, iters, names=['train_step', 'inference'])
      rows.append({'config': name, 'batch_size': batch_size, **result['images_per_s'],
                   'load_average': result['load_average']})
      print(f'scaling {name} batch {batch_size}: train {rows[-1]["train_step"]:.2f}, '
            f'inference {rows[-1]["inference"]:.2f} images/s', flush=True)
  return rows


def format_table(result):
  """The figures as printable lines."""
  lines = [f'{result["arch"]} {result["input_size"]}px {result["dtype"]} batch '
           f'{result["batch_size"]} on {result["device_kind"]} ({result["backend"]}), '
           f'load {result["load_average"][0]:.2f}']
  for name, rate in result['images_per_s'].items():
    if name == 'input':
      continue
    lines.append(f'  {name:<14} {rate:9.2f} images/s  {result["seconds_per_call"][name] * 1e3:9.1f}'
                 f' ms/call  {result["gflop_per_call"][name]:9.1f} GFLOP  '
                 f'MFU {100 * result["mfu"][name]:5.1f}%')
  if 'latency_ms_bs1' in result:
    lines.append(f'  latency (batch 1, with NMS) {result["latency_ms_bs1"]:.1f} ms')
  lines.append(f'  MFU peak: {result["peak_flop_per_s"] / 1e9:.0f} GFLOP/s '
               f'({result["peak_source"]})')
  for key in ('device_peak_bytes_in_use', 'host_max_rss_bytes'):
    if key in result:
      lines.append(f'  peak memory: {result[key] / 2**30:.2f} GiB ({key})')
  if 'input' in result:
    rate = result['input']
    lines.append(f'  input ({rate["dataset"]}): {rate["images_per_s"]:.1f} images/s, '
                 f'{rate["images_per_cpu_second"]:.1f} images per CPU-second; host cores '
                 f'needed: {rate.get("cores_for_measured_train_rate", float("nan")):.2f} for '
                 f'the measured train rate, {rate["cores_for_gpu_target"]:.1f} for '
                 f'{GPU_TARGET_IMAGES_PER_S:.0f} images/s')
  return '\n'.join(lines)


def load_config(path):
  """`get_config()` of a config file."""
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def main(argv):
  del argv
  errors.run_command('experiments.benchmark', _run)


def _run():
  file_io.check_not_inputs(
      [('--output', FLAGS.output, None)],
      [('--config', config_flags.get_config_filename(FLAGS['config']))]
      + [('--scaling', path) for path in FLAGS.scaling])
  config = config_keys.from_command_line(FLAGS.config)
  config.model.dtype = FLAGS.dtype
  input_config = config.copy_and_resolve_references()
  input_config.input.dataset = FLAGS.input_dataset or config.input.dataset
  result = run(config, FLAGS.batch_size, FLAGS.iters, input_batches=FLAGS.input_batches,
               input_config=input_config,
               peak_flops=FLAGS.peak_gflops and FLAGS.peak_gflops * 1e9)
  print(format_table(result), flush=True)
  if FLAGS.scaling:
    configs = {os.path.basename(path)[:-3]: load_config(path) for path in FLAGS.scaling}
    result['scaling'] = scaling(configs, [int(b) for b in FLAGS.scaling_batches], FLAGS.iters,
                                FLAGS.dtype)
  file_io.write_text(FLAGS.output, json.dumps(result, indent=2))
  print(f'wrote {FLAGS.output}')


if __name__ == '__main__':
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from ssd_jax import cli  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=False)
  flags.DEFINE_integer('batch_size', 8, 'Images per step.')
  flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Compute dtype of the model.')
  flags.DEFINE_integer('iters', 5, 'Timed calls per figure (median reported).')
  flags.DEFINE_integer('input_batches', 20, 'Batches timed through the input pipeline; 0: skip.')
  flags.DEFINE_string('input_dataset', None, "Data set for the input figure; None: the config's.")
  flags.DEFINE_float('peak_gflops', None, 'Peak GFLOP/s for MFU; None: vendor or measured.')
  flags.DEFINE_list('scaling', [], 'Config files for the scaling table (train and inference).')
  flags.DEFINE_list('scaling_batches', ['1', '8', '32'], 'Batch sizes for the scaling table.')
  flags.DEFINE_string('output', 'benchmark.json', 'Where to write the figures as JSON.')
  FLAGS = flags.FLAGS
  flags.mark_flags_as_required(['config'])
  cli.define_verbose()
  cli.run(main)
