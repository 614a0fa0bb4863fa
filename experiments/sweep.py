r"""Trains and evaluates every variant of a named sweep, then tabulates them (docs/sweeps.md).

  python -m experiments.sweep --config=configs/shapes.py --sweep=default_boxes --workdir=<dir> \
      [--steps=N] [--seeds=K] [--variant=I | --collect] [--list] [--config.<key>=<value>]

Each variant (experiments/sweeps.py) is the --config with the variant's overrides, trained by
the normal training program (`train.train_and_evaluate`) in <dir>/<variant> (seed k > 0 in
<dir>/<variant>/seed_<k>). A finished run has a `sweep_result.json` and is skipped; an
interrupted one resumes from its checkpoints, so rerunning the command completes the sweep.
--variant=I runs only the I-th variant (one cluster job each); --collect only gathers what is
finished. Every call that ends with all runs finished writes <dir>/results.{md,csv,png}.
"""

import copy
import difflib
import json
import math
import os
import time

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from experiments import sweep_results
from experiments import sweeps
from ssd_jax import anchors
from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax import errors
from ssd_jax import file_io
from ssd_jax import report

MANIFEST = 'sweep.json'
RESULT = 'sweep_result.json'
# Keys that may differ between calls of one sweep (where the data cache lives on this host).
_HOST_KEYS = ('input.data_dir',)


def get_sweep(name: str):
  """The variants [(name, overrides)] of sweep `name`."""
  if name not in sweeps.SWEEPS:
    close = difflib.get_close_matches(name, sweeps.SWEEPS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    raise errors.UserError(f"Unknown sweep '{name}'; experiments/sweeps.py defines "
                           f"{', '.join(sorted(sweeps.SWEEPS))}.{hint}")
  return list(sweeps.SWEEPS[name])


def apply_overrides(base: ml_collections.ConfigDict, variant: str,
                    overrides: dict) -> ml_collections.ConfigDict:
  """A locked copy of `base` with the dotted-key `overrides`; UserError naming a bad key."""
  config = copy.deepcopy(base)
  config.lock()
  for key, value in overrides.items():
    message = config_keys.unknown_key(config, key, prefix='')
    if message:
      raise errors.UserError(f"Sweep variant '{variant}': {message}")
    *groups, name = key.split('.')
    parent = config
    for part in groups:
      parent = parent[part]
    try:
      parent[name] = value
    except (TypeError, ValueError) as e:
      raise errors.UserError(f"Sweep variant '{variant}' sets '{key}' to {value!r}: "
                             f'{e}') from None
  try:
    anchors.default_boxes(config)  # map count, per-map lengths, scale rule
    anchors.eval_scales(config)  # eval.scales against the variant's maps
  except ValueError as e:
    raise errors.UserError(f"Sweep variant '{variant}' gives an invalid model: {e}") from None
  return config


def sweep_configs(base, sweep: str, steps: int | None):
  """[(name, overrides, config)] for every variant; every override is checked first."""
  base = copy.deepcopy(base)
  if steps is not None:
    base.num_train_steps = steps
  return base, [(name, overrides, apply_overrides(base, name, overrides))
                for name, overrides in get_sweep(sweep)]


def _plain(value):
  """JSON-comparable form: tuples as lists, nan as None."""
  if isinstance(value, float) and math.isnan(value):
    return None
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  return value


def _config_dict(config) -> dict:
  flat = {}

  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(value, f'{prefix}{key}.')
      elif prefix + key not in _HOST_KEYS:
        flat[prefix + key] = value
  walk(json.loads(config.to_json_best_effort()), '')
  return flat


def _write_json(path: str, data) -> None:
  """Writes `data` as JSON atomically (never a partial file)."""
  file_io.write_text(path, json.dumps(_plain(data), indent=2))


def check_workdir(workdir: str, sweep: str, base, variants) -> None:
  """Refuses a folder with another sweep's results; records this sweep in sweep.json."""
  path = os.path.join(workdir, MANIFEST)
  base_dict = _config_dict(base)
  recorded = {name: _plain(overrides) for name, overrides, _ in variants}
  if os.path.exists(path):
    with open(path) as f:
      manifest = json.load(f)
    if manifest['sweep'] != sweep:
      raise errors.UserError(f"{workdir} holds results of sweep '{manifest['sweep']}', not "
                             f"'{sweep}'; use another --workdir.")
    differ = [f"{k}: {manifest['base_config'].get(k)!r} there, {base_dict.get(k)!r} now"
              for k in sorted(set(manifest['base_config']) | set(base_dict))
              if manifest['base_config'].get(k) != base_dict.get(k)]
    if differ:
      raise errors.UserError(f"{workdir} holds sweep '{sweep}' run with another base config "
                             f"({'; '.join(differ[:3])}); use another --workdir.")
    for name, overrides in manifest['variants'].items():
      if name in recorded and recorded[name] != overrides:
        raise errors.UserError(f"{workdir} ran variant '{name}' with overrides {overrides}, "
                               f'but the sweep now says {recorded[name]}; give the changed '
                               'variant a new name or use another --workdir.')
    recorded = {**manifest['variants'], **recorded}
  elif os.path.isdir(workdir) and [n for n in os.listdir(workdir) if '.tmp' not in n]:
    raise errors.UserError(f'{workdir} is not empty and has no {MANIFEST}: it is not a sweep '
                           'folder; use a new or empty --workdir.')
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    _write_json(path, {'sweep': sweep, 'base_config': base_dict, 'variants': recorded})


def run_dirs(workdir: str, variant: str, seeds: int) -> list[str]:
  """Seed 0 in <workdir>/<variant>, seed k > 0 in <workdir>/<variant>/seed_<k>."""
  root = os.path.join(workdir, variant)
  return [root] + [os.path.join(root, f'seed_{k}') for k in range(1, seeds)]


def _load_result(run_dir: str) -> dict | None:
  path = os.path.join(run_dir, RESULT)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


class _Measurements:
  """What the table needs besides the eval metrics, measured once per variant."""

  def __init__(self, benchmark_iters: int):
    self.benchmark_iters = benchmark_iters
    self._ground_truth = {}

  def positives_per_object(self, config) -> float:
    """Mean default boxes with IoU >= loss.iou_threshold per validation object."""
    from experiments import prior_coverage  # pylint: disable=g-import-not-at-top  # TF
    key = json.dumps(_plain(config.input.to_dict()), sort_keys=True)
    if key not in self._ground_truth:
      self._ground_truth[key] = prior_coverage.eval_ground_truth(
          copy.deepcopy(config), config.eval.num_images)
    rows = anchors.coverage_by_size(self._ground_truth[key], anchors.default_boxes(config),
                                    config.loss.iou_threshold)
    return rows[0]['priors_per_object']  # the 'all' row

  def images_per_s(self, config) -> tuple[float | None, float | None]:
    """(train step, forward + postprocessing) images/s from experiments/benchmark.py."""
    if not self.benchmark_iters:
      return None, None
    from experiments import benchmark  # pylint: disable=g-import-not-at-top
    rates = benchmark.run(config, config.input.batch_size, self.benchmark_iters,
                          names=['train_step', 'inference'], mfu=False)['images_per_s']
    return rates['train_step'], rates['inference']


def _train(config, run_dir: str) -> dict:
  from ssd_jax import train  # pylint: disable=g-import-not-at-top  # imports TensorFlow
  metrics = train.train_and_evaluate(config, run_dir)
  if metrics is None:  # The checkpoints had every step already: evaluate the last one.
    metrics = train.evaluate_checkpoint(config, run_dir)
  return metrics


def _minutes(seconds: float) -> str:
  return f'{seconds / 60:.1f} min'


def run_sweep(base: ml_collections.ConfigDict, sweep: str, workdir: str, *,
              steps: int | None = None, seeds: int = 1, variant: int | None = None,
              collect: bool = False, benchmark_iters: int = 5) -> list[dict] | None:
  """Runs what is not finished (all variants, or only index `variant`), then tabulates.

  Returns the table rows when every run of the sweep is finished (results written), else
  None. `collect` trains nothing: it only tabulates the finished variants.
  """
  if seeds < 1:
    raise errors.UserError(f'--seeds={seeds}; expected 1 or more.')
  base, variants = sweep_configs(base, sweep, steps)
  if variant is not None and not 0 <= variant < len(variants):
    raise errors.UserError(f"--variant={variant} is out of range: sweep '{sweep}' has "
                           f'{len(variants)} variants (0..{len(variants) - 1}).')
  check_workdir(workdir, sweep, base, variants)
  chosen = [] if collect else [
      (i, v) for i, v in enumerate(variants) if variant is None or i == variant]
  todo = [(i, name, config, k, d) for i, (name, _, config) in chosen
          for k, d in enumerate(run_dirs(workdir, name, seeds)) if _load_result(d) is None]
  total_steps = sum(config.num_train_steps for _, _, config, _, _ in todo)
  measure = _Measurements(benchmark_iters)
  done_steps, start = 0, time.perf_counter()
  for n, (i, name, config, k, run_dir) in enumerate(todo):
    eta = ('after the first run' if not done_steps else
           _minutes((time.perf_counter() - start) / done_steps * (total_steps - done_steps)))
    report.note(f"[sweep {sweep}] variant {i + 1}/{len(variants)} '{name}', seed {k}: "
                f'{config.num_train_steps} steps in {run_dir} (run {n + 1}/{len(todo)}; ETA '
                f'for the sweep {eta})')
    config = copy.deepcopy(config)
    config.seed += k
    config.input.seed += k
    run_start = time.perf_counter()
    metrics = _train(config, run_dir)
    result = {'variant': name, 'seed': k, 'steps': config.num_train_steps, 'metrics': metrics,
              'boxes_per_cell': anchors.boxes_per_cell(config),
              'priors': int(anchors.default_boxes(config).shape[0]),
              'positives_per_object': None, 'train_images_per_s': None,
              'inference_images_per_s': None}
    if k == 0:  # Per variant, not per seed.
      result['positives_per_object'] = measure.positives_per_object(config)
      result['train_images_per_s'], result['inference_images_per_s'] = (
          measure.images_per_s(config))
    if jax.process_index() == 0:
      _write_json(os.path.join(run_dir, RESULT), result)  # the "finished" marker
    done_steps += config.num_train_steps
    report.note(f"[sweep {sweep}] '{name}' seed {k} finished in "
                f"{_minutes(time.perf_counter() - run_start)}: mAP {metrics['mAP']:.4f}")
  return collect_results(workdir, sweep, variants, seeds)


def collect_results(workdir: str, sweep: str, variants, seeds: int) -> list[dict] | None:
  """Writes results.{md,csv,png} from the finished runs; None if some run is unfinished."""
  rows, missing = [], []
  for name, overrides, _ in variants:
    runs = [_load_result(d) for d in run_dirs(workdir, name, seeds)]
    finished = [r for r in runs if r is not None]
    if len(finished) < len(runs):
      missing.append(f'{name} ({len(runs) - len(finished)} of {len(runs)} runs)')
    if runs[0] is not None:
      rows.append(sweep_results.variant_row(name, overrides, finished))
  if jax.process_index() == 0 and rows:
    paths = sweep_results.write_all(workdir, rows, f'sweep {sweep}', missing)
    report.note(f"[sweep {sweep}] wrote {', '.join(paths)}")
  if missing:
    report.note(f"[sweep {sweep}] not finished: {', '.join(missing)}")
    return None
  return rows


# --- The command line ------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program; tests import the rest)."""
  config_flags.DEFINE_config_file('config', None, 'Base config file.', lock_config=True)
  flags.DEFINE_string('sweep', None, f'Sweep name: one of {sorted(sweeps.SWEEPS)}.')
  flags.DEFINE_string('workdir', None, 'Sweep folder: one subfolder per variant, results.*.')
  flags.DEFINE_integer('steps', None, 'Training steps per variant (default: the config\'s).')
  flags.DEFINE_integer('seeds', 1, 'Runs per variant with seeds config.seed + 0 .. K - 1.')
  flags.DEFINE_integer('variant', None, 'Run only this variant (0-based index), e.g. '
                       '$SLURM_ARRAY_TASK_ID.')
  flags.DEFINE_bool('collect', False, 'Train nothing; tabulate the finished variants.')
  flags.DEFINE_bool('list', False, 'Print the sweep\'s variants with their index and exit.')
  flags.DEFINE_integer('benchmark_iters', 5, 'Timed benchmark calls per variant (0: skip).')
  cli.define_verbose()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Progress is printed by the library; INFO would add every orbax and tf.data message.
  logging.set_verbosity(logging.WARNING)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  report.import_tensorflow_quietly()
  errors.run_command('experiments.sweep', _run)


def _run() -> None:
  if FLAGS.list:
    for i, (name, overrides) in enumerate(get_sweep(FLAGS.sweep)):
      print(f'{i}: {name} {overrides}')
    return
  if not FLAGS.workdir:
    raise errors.UserError('--workdir is required.')
  run_sweep(config_keys.from_command_line(FLAGS.config), FLAGS.sweep, FLAGS.workdir,
            steps=FLAGS.steps, seeds=FLAGS.seeds, variant=FLAGS.variant, collect=FLAGS.collect,
            benchmark_iters=FLAGS.benchmark_iters)


if __name__ == '__main__':
  define_flags()
  flags.mark_flags_as_required(['config', 'sweep'])
  cli.run(main)
