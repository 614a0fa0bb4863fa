r"""Command line for training, evaluation and model summaries.

  python -m ssd_jax.main --config=configs/<name>.py --workdir=<dir> [--mode=train|eval|describe]
      [--config.<key>=<value> ...]

Multi-host: pass --coordinator_address, --num_processes and --process_id (or set
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), or --distributed on a cluster
that JAX detects by itself (SLURM, TPU pods). Flags, logging and device info only here; the
work happens in the library.
"""

import os

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
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
flags.DEFINE_enum('cpu_collectives', 'gloo', ['gloo', 'mpi', 'none'],
                  'Collectives for multi-process runs on CPU.')
flags.mark_flags_as_required(['config'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Progress is printed by the library; INFO would add every orbax and tf.data message.
  logging.set_verbosity(logging.WARNING)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

  from ssd_jax import describe  # pylint: disable=g-import-not-at-top
  if FLAGS.mode == 'describe':
    print(describe.format_summary(describe.describe(FLAGS.config)))
    return
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required for --mode=train and --mode=eval.')

  if FLAGS.coordinator_address or FLAGS.distributed:
    if FLAGS.cpu_collectives != 'none':
      jax.config.update('jax_cpu_collectives_implementation', FLAGS.cpu_collectives)
    if FLAGS.coordinator_address:
      jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                 FLAGS.process_id)
    else:
      jax.distributed.initialize()
  print(f'JAX process {jax.process_index()} / {jax.process_count()}; local devices: '
        f'{jax.local_devices()}; global devices: {jax.device_count()}', flush=True)

  from ssd_jax import train  # pylint: disable=g-import-not-at-top  # imports TensorFlow
  if FLAGS.mode == 'train':
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  else:
    train.evaluate_checkpoint(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
