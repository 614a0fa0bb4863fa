"""`python -m ssd_jax.main`: bad flags, config files and keys end in one line, exit status 1."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # Each test runs `python -m ssd_jax.main`.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args, env=None):
  return subprocess.run([sys.executable, '-m', 'ssd_jax.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, **(env or {})))


@pytest.mark.parametrize('args, message', [
    (['--config=configs/smoke.py', '--config.model.nonexistent=3', '--mode=describe'],
     '--config.model.nonexistent: no such config key; did you mean --config.model.norm?'),
    (['--config=configs/smoke.py', '--config.modle.width=3', '--mode=describe'],
     '--config.modle.width: no such config key; did you mean --config.model.width?'),
    (['--config=configs/missing.py', '--mode=describe'],
     '--config=configs/missing.py: no such config file'),
    (['--config=configs/smoke.py', '--config.model.width=abc', '--mode=describe'],
     "flag --config.model.width=abc: could not convert string to float: 'abc'"),
    (['--config=configs/smoke.py', '--mode=eval'],
     '--workdir is required for --mode=train and --mode=eval.'),
])
def test_bad_flags_end_in_one_line(args, message, tmp_path):
  result = run_main(*args)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [f'ssd_jax.main: error: {message}']


def test_a_config_file_that_does_not_load_is_named(tmp_path):
  path = tmp_path / 'broken.py'
  path.write_text('def get_config(:\n')
  result = run_main(f'--config={path}', '--mode=describe')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'ssd_jax.main: error: --config={path}: cannot load it (SyntaxError: invalid syntax '
      '(broken.py, line 1))']


def test_verbose_shows_the_traceback():
  args = ['--config=configs/smoke.py', '--config.model.nonexistent=3', '--mode=describe']
  for extra, env in ((['--verbose'], None), ([], {'SSD_JAX_TRACEBACK': '1'})):
    result = run_main(*args, *extra, env=env)
    assert result.returncode != 0
    assert 'Traceback (most recent call last)' in result.stderr


def test_an_override_of_a_declared_key_works():
  result = run_main('--config=configs/shapes.py', '--config.input.shapes_num_train=100',
                    '--config.model.width=0.25', '--mode=describe')
  assert result.returncode == 0, result.stderr
  assert 'width x0.25' in result.stdout


def test_none_selects_the_scale_rule_for_the_box_sizes():
  result = run_main('--config=configs/shapes.py', '--config.anchors.min_sizes=None',
                    '--config.anchors.max_sizes=None', '--mode=describe')
  assert result.returncode == 0, result.stderr
  # The paper's rule as Caffe computes it, for 6 maps at 128 px: first_scale 17% for the first
  # map, then 33% (s_min) in whole-percent steps of (100 - 33) // (6 - 2) = 16%; each map's
  # max size is the next one's min size.
  percents = [17, 33, 49, 65, 81, 97, 113]
  sizes = [round(128 * p / 100, 1) for p in percents]
  rows = [line.split() for line in result.stdout.splitlines()
          if line.split()[1:2] and line.split()[1].startswith('conv')]  # index, source, ...
  assert [(float(r[5]), float(r[6])) for r in rows] == list(zip(sizes, sizes[1:]))
