"""Command line: `python -m ssd_jax.main --config=configs/<name>.py --workdir=<dir> --mode=...`.

Flags, logging and device info only; the work happens in the library.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from ssd_jax import describe

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training configuration file.',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and logs.')
flags.DEFINE_enum('mode', 'describe', ['describe'], 'What to do.')
flags.mark_flags_as_required(['config'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  if FLAGS.mode == 'describe':
    print(describe.format_summary(describe.describe(FLAGS.config)))


if __name__ == '__main__':
  app.run(main)
