r"""Command line for training, evaluation and model summaries.

  python -m ssd_jax.main --config=configs/<name>.py --workdir=<dir> [--mode=train|eval|describe]
      [--config.<key>=<value> ...] [--verbose]

Multi-host: pass --coordinator_address, --num_processes and --process_id (or set
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), or --distributed on a cluster
that JAX detects by itself (SLURM, TPU pods). Flags, logging and device info only here; the
work happens in the library. What the user must fix (a bad flag, config key, file or workdir)
ends the run with one line on stderr and exit status 1; --verbose shows the traceback.
SIGTERM or Ctrl-C during training saves the current step and exits with status 143 or 130
(`ssd_jax.preemption`); rerunning the same command resumes from it.
"""

import importlib.util
import os
import sys

from ssd_jax import quiet

quiet.environment()  # Before anything imports TensorFlow or starts XLA.

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from ssd_jax import cli
from ssd_jax import config_keys
from ssd_jax import errors
from ssd_jax import report
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (configs/<name>.py); '
                                '--config.<key>=<value> overrides a key.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and logs.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'describe'],
                  'train (resumes from workdir), eval (latest or --config.eval_step), describe.')
flags.DEFINE_string('coordinator_address', os.environ.get('JAX_COORDINATOR_ADDRESS'),
                    'host:port of process 0, for multi-host runs.')
flags.DEFINE_integer('num_processes', int(os.environ.get('JAX_NUM_PROCESSES', 0)) or None,
                     'Number of processes in a multi-host run.')
flags.DEFINE_integer('process_id', int(os.environ.get('JAX_PROCESS_ID', -1)),
                     'This process in a multi-host run.')
flags.DEFINE_bool('distributed', False,
                  'Call jax.distributed.initialize() with cluster auto-detection.')
flags.DEFINE_list('local_device_ids', None,
                  'Devices of this process in a multi-process run, e.g. 0,1,2,3,4,5,6,7 for one '
                  'process per 8-GPU node under SLURM. Default: JAX\'s choice (under SLURM one '
                  'device per process, the one of index SLURM_LOCALID).')
flags.DEFINE_enum('cpu_collectives', 'gloo', ['gloo', 'mpi', 'none'],
                  'Collectives for multi-process runs on CPU.')
flags.mark_flags_as_required(['config'])
cli.define_verbose()

PROG = 'ssd_jax.main'
_CONFIG_ERRORS = (AttributeError, KeyError, OSError, TypeError, ValueError, SyntaxError,
                  ImportError)


def _fail(message: str):
  sys.exit(f'{PROG}: error: {message}')


def _load_config_file(path: str):
  spec = importlib.util.spec_from_file_location('ssd_jax_user_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _explain_flag_error(argv: list[str], error: BaseException) -> str:
  """One line for a flag error; a bad --config file or --config.<key> override is named."""
  path, overrides = None, []
  for arg in argv[1:]:
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1]
    elif arg.startswith('--config.'):
      overrides.append(arg[len('--config.'):].split('=', 1)[0])
  file_path = None if path is None else path.split(':', 1)[0]
  if file_path is not None and not os.path.isfile(file_path):
    return f'--config={path}: no such config file'
  if file_path is None or isinstance(error, flags.IllegalFlagValueError):
    return errors.one_line(error)
  try:
    config = _load_config_file(file_path)
  except Exception as e:  # pylint: disable=broad-except  # The user's config file failed.
    return f'--config={path}: cannot load it ({type(e).__name__}: {errors.one_line(e)})'
  for key in overrides:
    message = config_keys.unknown_key(config, key)
    if message:
      return message
  if isinstance(error, flags.Error):
    return errors.one_line(error)
  return f'--config={path}: {errors.one_line(error)}'


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors for a bad config file, key or value."""
  try:
    return FLAGS(argv)
  except (flags.Error,) + _CONFIG_ERRORS as e:
    if errors.show_traceback('--verbose' in argv):
      raise
    _fail(_explain_flag_error(argv, e))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    # absl loads --config lazily: a file that fails to load raises here.
    config = config_keys.from_command_line(FLAGS.config)
  except _CONFIG_ERRORS as e:
    if errors.show_traceback():
      raise
    _fail(_explain_flag_error(sys.argv, e))
  try:
    errors.run_command(PROG, lambda: run(config, FLAGS.workdir, FLAGS.mode),
                       also=(FloatingPointError,))
  except KeyboardInterrupt:  # Ctrl-C outside the training loop (set-up, --mode=eval).
    if errors.show_traceback():
      raise
    print(f'{PROG}: interrupted (SIGINT)', file=sys.stderr, flush=True)
    sys.stdout.flush()
    # The lock is released by now. Not sys.exit: the interpreter's teardown with TensorFlow's
    # and XLA's threads cut off mid-work can crash (a segmentation fault, seen in --mode=eval).
    os._exit(128 + 2)  # pylint: disable=protected-access


def run(config, workdir: str | None, mode: str) -> None:
  """Describe, train or evaluate `config`; the one call into the library."""
  quiet.libraries()  # Progress is printed by the library (report.note).

  from ssd_jax import describe  # pylint: disable=g-import-not-at-top
  from ssd_jax import models  # pylint: disable=g-import-not-at-top
  if mode == 'describe':
    priors = models.default_boxes(config)
    print(describe.format_summary(describe.describe(config, priors)))
    return
  if not workdir:
    raise errors.UserError('--workdir is required for --mode=train and --mode=eval.')

  if FLAGS.coordinator_address or FLAGS.distributed:
    if FLAGS.cpu_collectives != 'none':
      jax.config.update('jax_cpu_collectives_implementation', FLAGS.cpu_collectives)
    local = None if FLAGS.local_device_ids is None else [int(i) for i in FLAGS.local_device_ids]
    if FLAGS.coordinator_address:
      jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                 FLAGS.process_id, local_device_ids=local)
    else:
      jax.distributed.initialize(local_device_ids=local)
  report.note(f'JAX: {jax.process_count()} process(es), {jax.device_count()} device(s) '
              f'({jax.local_device_count()} per process: {jax.devices()[0].device_kind}).')

  quiet.import_tensorflow()
  from ssd_jax import train  # pylint: disable=g-import-not-at-top
  from ssd_jax import preemption  # pylint: disable=g-import-not-at-top
  if mode == 'train':
    try:
      train.train_and_evaluate(config, workdir)
    except preemption.Stopped as e:  # SIGTERM/SIGINT: saved; one line, status 128 + signal.
      if jax.process_index() == 0:
        print(e, file=sys.stderr, flush=True)
      sys.exit(e.exit_status)
  else:
    train.evaluate_checkpoint(config, workdir)


if __name__ == '__main__':
  cli.run(main, flags_parser=parse_flags)
