"""`--help` of every command: its own flags, one line each."""

import concurrent.futures
import re

from absl import flags
import pytest

from ssd_jax import cli
from ssd_jax import evaluate  # pylint: disable=unused-import  (defines its flags at import)
from tests import command_line

# Each command's own flags: its interface (absl's logging and debugging flags are not listed).
FLAGS = {
    'ssd_jax.main': 'config workdir mode coordinator_address num_processes process_id '
                    'distributed local_device_ids cpu_collectives verbose',
    'ssd_jax.detect': 'workdir model step output draw score_threshold batch_size verbose',
    'ssd_jax.export': 'workdir step format output batch_size quantize calibration '
                      'calibration_images verbose',
    'ssd_jax.evaluate': 'ground_truth detections metric split class_names output plots verbose',
    'ssd_jax.convert': 'input output config verbose',
    'experiments.benchmark': 'config batch_size dtype iters input_batches input_dataset '
                             'peak_gflops scaling scaling_batches output verbose',
    'experiments.benchmark_eval': 'images detections with_file',
    'experiments.benchmark_input': 'config num_batches warmup_batches voc_images output '
                                   'workloads',
    'experiments.compare_torchvision': 'config torch_python batch_size rounds calls figures '
                                       'output',
    'experiments.error_analysis': 'workdir step output verbose',
    'experiments.prior_coverage': 'config num_images thresholds output',
    'experiments.profile_train': 'config batch_size iters parts verbose',
    'experiments.sweep': 'config sweep vary workdir steps seeds reference variant collect list '
                         'benchmark_iters verbose',
    'experiments.export_benchmark': 'config batch_size formats repeats torch_python export_dir',
    'experiments.sweep_timing': 'config sweep vary batch_size calls rounds output',
    'experiments.export_accuracy': 'workdir models num_images batch_size',
    'experiments.gpu.suite': 'configs dtypes train_batches infer_batch iters budget_s output_dir',
}
LINE = re.compile(r'^--([a-z0-9_]+): \S.* \((default: .+|required)\)$')


def test_flag_lines_of_an_imported_command():
  lines = cli.flag_lines('ssd_jax.evaluate')
  names = [LINE.match(line).group(1) for line in lines]
  assert names == ['ground_truth', 'detections', 'metric', 'split', 'class_names', 'output',
                   'plots', 'verbose']
  assert '--ground_truth: VOC devkit year folder (e.g. VOCdevkit/VOC2007) or COCO instances ' \
         'json. (required)' in lines
  assert '--split: VOC image set: ImageSets/Main/<split>.txt. (default: test)' in lines
  assert lines[-1].startswith('--verbose: On an error, show the traceback') and \
         lines[-1].endswith('(default: False)')
  assert flags.FLAGS['verbose'].default is False


def test_asks_for_help():
  assert cli.asks_for_help(['prog', '--output=x', '--help'])
  assert cli.asks_for_help(['prog', '-h']) and cli.asks_for_help(['prog', '--helpshort'])
  assert not cli.asks_for_help(['prog', '--helpfull'])  # absl's full listing.
  assert not cli.asks_for_help(['prog', '--', '--help'])  # After `--`: an argument.
  assert not cli.asks_for_help(['prog', '--output=--help'])


def _help(module):
  return command_line.run(module, '--help', env={'JAX_PLATFORMS': 'cpu'})


@pytest.mark.slow
def test_every_command_lists_its_own_flags_one_line_each():
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    results = dict(zip(FLAGS, pool.map(_help, FLAGS)))
  for module, result in results.items():
    assert result.returncode == 0, (module, result.stderr[-2000:])
    assert 'Traceback' not in result.stderr, module
    usage, flag_lines = result.stdout.split('\nFlags:\n', 1)
    assert f'python -m {module}' in usage, module  # The command's docstring.
    flag_lines = flag_lines.splitlines()
    assert all(LINE.match(line) for line in flag_lines), (module, flag_lines)
    names = [LINE.match(line).group(1) for line in flag_lines]
    assert sorted(names) == sorted(FLAGS[module].split()), (module, names)
