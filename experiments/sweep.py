r"""Trains and evaluates every variant of a sweep, then tabulates them (docs/sweeps.md).

  python -m experiments.sweep --config=configs/shapes.py --workdir=<dir> \
      (--sweep=default_boxes | --sweep=path/to/my_sweep.py | --vary=<key>=<v1>,<v2>,...) \
      [--steps=N] [--seeds=K] [--reference=<variant>] [--variant=I | --collect] [--list] \
      [--config.<key>=<value>]

Each variant (a named sweep of experiments/sweeps.py, a file defining VARIANTS, or the values
of one key) is the --config with the variant's overrides, trained by the normal training
program (`train.train_and_evaluate`) in <dir>/<variant> (seed k > 0 in <dir>/<variant>/seed_<k>).
A finished run has a `sweep_result.json` and is skipped; an interrupted one resumes from its
checkpoints, so rerunning the command completes the sweep. --variant=I runs only the I-th
variant (one cluster job each); --collect only gathers what is finished. Every call that ends
with all runs finished writes <dir>/results.{md,csv,png}: mean ± std over seeds and the paired
difference to a reference variant with its 95% t interval.
"""

import copy
import difflib
import json
import os
import re
import shlex
import sys
import time

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags

from experiments import sweep_results
from experiments import sweep_variants
from experiments import sweeps
from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax import errors
from ssd_jax import file_io
from ssd_jax import models
from ssd_jax import quiet
from ssd_jax import report

MANIFEST = 'sweep.json'
RESULT = 'sweep_result.json'
# Keys that may differ between calls of one sweep (where the data cache lives on this host).
_HOST_KEYS = ('input.data_dir',)


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
    # Map count, per-map lengths, scale rule, eval.scales against the variant's maps.
    models.default_boxes(config)
  except ValueError as e:
    raise errors.UserError(f"Sweep variant '{variant}' gives an invalid model: {e}") from None
  except TypeError as e:  # e.g. a per-map entry of the wrong type
    raise errors.UserError(f"Sweep variant '{variant}' gives an invalid model: "
                           f'TypeError: {e}') from None
  return config


def sweep_configs(base, sweep: sweep_variants.Sweep, steps: int | None):
  """(base with `steps`, [(name, overrides, config)] for every variant); every override is
  checked first."""
  base = copy.deepcopy(base)
  if steps is not None:
    base.num_train_steps = steps
  return base, [(name, overrides, apply_overrides(base, name, overrides))
                for name, overrides in sweep.variants]


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
  file_io.write_text(path, json.dumps(sweep_variants.plain(data), indent=2))


def read_manifest(workdir: str) -> dict | None:
  """The folder's sweep.json, or None where there is none."""
  path = os.path.join(workdir, MANIFEST)
  if not os.path.exists(path):
    return None
  return file_io.read_json(path, 'sweep manifest')


def check_workdir(workdir: str, sweep: str, base, variants, manifest: dict | None,
                  seeds: int, collect: bool) -> None:
  """Refuses a folder with another sweep's results, another base config or other steps;
  unless `collect`, records this sweep in sweep.json. `collect` refuses a folder that is not
  a sweep folder and writes nothing."""
  base_dict = _config_dict(base)
  recorded = {name: sweep_variants.plain(overrides) for name, overrides, _ in variants}
  if manifest is not None:
    if manifest['sweep'] != sweep:
      raise errors.UserError(f"{workdir} holds results of sweep '{manifest['sweep']}', not "
                             f"'{sweep}'; use another --workdir.")
    there = manifest['base_config'].get('num_train_steps')
    if there != base.num_train_steps:
      raise errors.UserError(
          f'{workdir} is a sweep of {there} training steps per run, and this call asks for '
          f'{base.num_train_steps} (--steps or the config\'s num_train_steps); results of '
          f'different lengths are never mixed in one table: give --steps={there}, or use '
          'another --workdir.')
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
    seeds = max(seeds, manifest.get('seeds', 1))
  elif collect:
    raise errors.UserError(f'--collect: {workdir} is not a sweep folder (it has no '
                           f'{MANIFEST}); check --workdir.')
  elif os.path.isdir(workdir) and [n for n in os.listdir(workdir) if '.tmp' not in n]:
    raise errors.UserError(f'{workdir} is not empty and has no {MANIFEST}: it is not a sweep '
                           'folder; use a new or empty --workdir.')
  if not collect and jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, MANIFEST),
                {'sweep': sweep, 'base_config': base_dict, 'variants': recorded,
                 'seeds': seeds})


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
    key = json.dumps(sweep_variants.plain(config.input.to_dict()), sort_keys=True)
    if key not in self._ground_truth:
      self._ground_truth[key] = prior_coverage.eval_ground_truth(
          copy.deepcopy(config), config.eval.num_images)
    rows = prior_coverage.coverage_by_size(self._ground_truth[key], models.default_boxes(config).boxes,
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


def finished_seeds(workdir: str, variant: str) -> list[int]:
  """The seed offsets k whose run of `variant` has finished, from what is on disk."""
  root = os.path.join(workdir, variant)
  found = [0] if _load_result(root) is not None else []
  if os.path.isdir(root):
    for entry in os.listdir(root):
      match = re.fullmatch(r'seed_([1-9][0-9]*)', entry)
      if match and _load_result(os.path.join(root, entry)) is not None:
        found.append(int(match.group(1)))
  return sorted(found)


def default_reference(base, variants) -> str:
  """The first variant whose config is the base config; else the first variant."""
  base_dict = _config_dict(base)
  for name, _, config in variants:
    if _config_dict(config) == base_dict:
      return name
  return variants[0][0]


def run_sweep(base: ml_collections.ConfigDict, sweep: str | sweep_variants.Sweep, workdir: str,
              *, steps: int | None = None, seeds: int | None = None, variant: int | None = None,
              collect: bool = False, benchmark_iters: int = 5, reference: str | None = None,
              command: list[str] | None = None) -> list[dict] | None:
  """Runs what is not finished (all variants, or only index `variant`), then tabulates.

  `sweep`: a name from experiments/sweeps.py or a sweep_variants.Sweep (a file, --vary).
  `steps`: None trains the config's num_train_steps; with `collect`, None takes the steps the
  folder's runs trained. `seeds`: runs per variant to train (None: 1); the table holds `seeds`
  seeds, or with None every seed the folder has (sweep.json's, or any finished on disk).
  `reference`: the variant the paired differences are to (None: default_reference).
  `command`: the command-line arguments, for the "reproduce" line of results.md.

  Every input is checked before anything is written. Returns the table rows when every run
  of the table is finished (results written), else None. `collect` trains nothing and
  creates nothing but results.*, in a folder that has a sweep.json.
  """
  if seeds is not None and seeds < 1:
    raise errors.UserError(f'--seeds={seeds}; expected 1 or more.')
  if isinstance(sweep, str):
    sweep = sweep_variants.get_sweep(sweep)
  manifest = read_manifest(workdir) if os.path.isdir(workdir) else None
  if collect and steps is None and manifest is not None:
    steps = manifest['base_config']['num_train_steps']
  base, variants = sweep_configs(base, sweep, steps)
  names = [name for name, _, _ in variants]
  if reference is None:
    reference = default_reference(base, variants)
  elif reference not in names:
    close = difflib.get_close_matches(reference, names, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    raise errors.UserError(f"--reference={reference} names no variant of sweep "
                           f"'{sweep.name}' ({', '.join(names)}).{hint}")
  if variant is not None and not 0 <= variant < len(variants):
    raise errors.UserError(f"--variant={variant} is out of range: sweep '{sweep.name}' has "
                           f'{len(variants)} variants (0..{len(variants) - 1}).')
  check_workdir(workdir, sweep.name, base, variants, manifest, seeds or 1, collect)
  chosen = [] if collect else [
      (i, v) for i, v in enumerate(variants) if variant is None or i == variant]
  todo = [(i, name, config, k, d) for i, (name, _, config) in chosen
          for k, d in enumerate(run_dirs(workdir, name, seeds or 1)) if _load_result(d) is None]
  total_steps = sum(config.num_train_steps for _, _, config, _, _ in todo)
  measure = _Measurements(benchmark_iters)
  done_steps, start = 0, time.perf_counter()
  for n, (i, name, config, k, run_dir) in enumerate(todo):
    eta = ('after the first run' if not done_steps else
           _minutes((time.perf_counter() - start) / done_steps * (total_steps - done_steps)))
    report.note(f"[sweep {sweep.name}] variant {i + 1}/{len(variants)} '{name}', seed {k}: "
                f'{config.num_train_steps} steps in {run_dir} (run {n + 1}/{len(todo)}; ETA '
                f'for the sweep {eta})')
    config = copy.deepcopy(config)
    config.seed += k
    config.input.seed += k
    run_start = time.perf_counter()
    metrics = _train(config, run_dir)
    priors = models.default_boxes(config)
    result = {'variant': name, 'seed': k, 'steps': config.num_train_steps, 'metrics': metrics,
              'boxes_per_cell': list(priors.boxes_per_cell), 'priors': int(priors.boxes.shape[0]),
              'positives_per_object': None, 'train_images_per_s': None,
              'inference_images_per_s': None}
    if k == 0:  # Per variant, not per seed.
      result['positives_per_object'] = measure.positives_per_object(config)
      result['train_images_per_s'], result['inference_images_per_s'] = (
          measure.images_per_s(config))
    if jax.process_index() == 0:
      _write_json(os.path.join(run_dir, RESULT), result)  # the "finished" marker
    done_steps += config.num_train_steps
    report.note(f"[sweep {sweep.name}] '{name}' seed {k} finished in "
                f"{_minutes(time.perf_counter() - run_start)}: mAP {metrics['mAP']:.4f}")
  if seeds is None:
    recorded = (read_manifest(workdir) or {}).get('seeds', 1)
    seeds = max([recorded] + [k + 1 for name in names for k in finished_seeds(workdir, name)])
  info = {'steps': base.num_train_steps, 'seeds': list(range(seeds)), 'base_seed': base.seed,
          'reference': reference,
          'command': None if command is None else _reproduce(command, base.num_train_steps,
                                                              seeds, reference)}
  return collect_results(workdir, sweep.name, variants, seeds, info)


# Flags the "reproduce" command sets itself (or that do not change the table).
_REWRITTEN_FLAGS = ('steps', 'seeds', 'reference', 'variant', 'collect', 'nocollect', 'list',
                    'nolist')


def _reproduce(argv: list[str], steps: int, seeds: int, reference: str) -> str:
  """The command line that trains (or resumes) every run of the table and writes it."""
  kept, skip = [], False
  for arg in argv:
    if skip:
      skip = False
      continue
    name = arg.lstrip('-').split('=', 1)[0]
    if arg.startswith('-') and name in _REWRITTEN_FLAGS:
      skip = '=' not in arg and name in ('steps', 'seeds', 'reference', 'variant')
      continue
    kept.append(arg)
  return shlex.join(['python', '-m', 'experiments.sweep', *kept, f'--steps={steps}',
                     f'--seeds={seeds}', f'--reference={reference}'])


def collect_results(workdir: str, sweep: str, variants, seeds: int,
                    info: dict) -> list[dict] | None:
  """Writes results.{md,csv,png} from the finished runs of seeds 0 .. seeds - 1 (finished
  runs of higher seeds are named as left out); None if some run is unfinished.

  `info`: steps, seeds, base_seed, reference, command (see sweep_results.write_markdown).
  """
  runs, missing, left_out = {}, [], []
  for name, _, _ in variants:
    dirs = run_dirs(workdir, name, seeds)
    results = [_load_result(d) for d in dirs]
    for d, r in zip(dirs, results):
      if r is not None and r['steps'] != info['steps']:
        raise errors.UserError(f"{os.path.join(d, RESULT)} trained {r['steps']} steps, the "
                               f"table {info['steps']}; results of different lengths are never "
                               'mixed in one table.')
    runs[name] = [r for r in results if r is not None]
    if len(runs[name]) < len(results):
      missing.append(f'{name} ({len(results) - len(runs[name])} of {len(results)} runs)')
    extra = [k for k in finished_seeds(workdir, name) if k >= seeds]
    if extra:
      left_out.append(f"{name} (seed {', '.join(str(k) for k in extra)})")
  reference = info['reference']
  rows = [sweep_results.variant_row(name, overrides, runs[name],
                                    None if name == reference else runs[reference])
          for name, overrides, _ in variants if runs[name]]
  if jax.process_index() == 0 and rows:
    paths = sweep_results.write_all(workdir, rows, f'sweep {sweep}',
                                    {**info, 'missing': missing, 'left_out': left_out})
    report.note(f"[sweep {sweep}] wrote {', '.join(paths)}")
  if left_out:
    report.note(f"[sweep {sweep}] finished runs left out of the table (it has --seeds="
                f"{seeds}): {', '.join(left_out)}")
  if missing:
    report.note(f"[sweep {sweep}] not finished: {', '.join(missing)}")
    return None
  return rows


# --- The command line ------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program; tests import the rest)."""
  config_flags.DEFINE_config_file('config', None, 'Base config file.', lock_config=True)
  flags.DEFINE_string('sweep', None, f'Sweep name: one of {sorted(sweeps.SWEEPS)}; or a Python '
                      'file defining VARIANTS = ((name, {dotted.key: value}), ...).')
  flags.DEFINE_string('vary', None, 'A one-key sweep: <config key>=<value>,<value>,... '
                      "(Python literals), e.g. --vary=anchors.min_sizes='(...)','(...)'.")
  flags.DEFINE_string('workdir', None, 'Sweep folder: one subfolder per variant, results.*.')
  flags.DEFINE_integer('steps', None, 'Training steps per variant (default: the config\'s; '
                       'with --collect, the steps the folder\'s runs trained).')
  flags.DEFINE_integer('seeds', None, 'Runs per variant with seeds config.seed + 0 .. K - 1 '
                       '(default 1; the table: every seed the folder has).')
  flags.DEFINE_string('reference', None, 'The variant the paired differences are to (default: '
                      'the variant that is the base config, else the first).')
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
  quiet.libraries()
  quiet.import_tensorflow()
  errors.run_command('experiments.sweep', _run)


def _run() -> None:
  base = config_keys.from_command_line(FLAGS.config)
  sweep = sweep_variants.resolve_sweep(FLAGS.sweep, FLAGS.vary, base)
  if FLAGS.list:
    for i, (name, overrides) in enumerate(sweep.variants):
      print(f'{i}: {name} {overrides}')
    return
  if not FLAGS.workdir:
    raise errors.UserError('--workdir is required.')
  file_io.check_not_inputs(
      [('--workdir', FLAGS.workdir, ('*',))],
      [('--config', config_flags.get_config_filename(FLAGS['config'])),
       ('--config.input.folder', base.input.folder),
       ('--config.init_from', base.init_from)])
  from ssd_jax import preemption  # pylint: disable=g-import-not-at-top
  try:
    run_sweep(base, sweep, FLAGS.workdir, steps=FLAGS.steps, seeds=FLAGS.seeds,
              variant=FLAGS.variant, collect=FLAGS.collect,
              benchmark_iters=FLAGS.benchmark_iters, reference=FLAGS.reference,
              command=sys.argv[1:])
  except preemption.Stopped as e:  # SIGTERM/SIGINT in a run: saved; the same command resumes.
    print(e, file=sys.stderr, flush=True)
    sys.exit(e.exit_status)


if __name__ == '__main__':
  define_flags()
  flags.mark_flags_as_required(['config'])
  cli.run(main)
