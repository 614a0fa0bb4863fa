"""The benchmark runs end to end on the smoke config and produces every figure (no timings)."""

import json
import math
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from configs import smoke
from experiments import benchmark

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = ('train_step', 'inference', 'inference_bs1', 'forward', 'postprocess',
           'matcher_loss', 'input')


@pytest.mark.slow
def test_run_produces_every_figure(tmp_path):
  config = smoke.get_config()
  config.input.data_dir = str(tmp_path / 'tfds')
  result = benchmark.run(config, 2, 1, input_batches=2)
  assert set(FIGURES) <= set(result['images_per_s'])
  for name, rate in result['images_per_s'].items():
    assert rate > 0 and math.isfinite(rate), name
  for name in FIGURES[:-1]:
    assert result['gflop_per_call'][name] >= 0 and result['mfu'][name] >= 0
  assert result['gflop_per_call']['train_step'] > result['gflop_per_call']['forward'] > 0
  assert result['latency_ms_bs1'] > 0 and result['peak_flop_per_s'] > 0
  assert result.get('host_max_rss_bytes', 0) + result.get('device_peak_bytes_in_use', 0) > 0
  assert result['input']['cores_for_gpu_target'] > 0
  assert result['input']['cores_for_measured_train_rate'] > 0
  assert 'train_step' in benchmark.format_table(result)


def test_without_the_data_the_model_is_timed_and_the_input_figure_skipped(tmp_path, capsys,
                                                                          monkeypatch):
  def download(*args, **kwargs):
    raise AssertionError('the benchmark must not download data')
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', download)
  config = smoke.get_config()
  config.input.dataset, config.input.data_dir = 'voc', str(tmp_path / 'tfds')
  result = benchmark.run(config, 2, 1, input_batches=2, names=['forward'], mfu=False)
  assert result['images_per_s']['forward'] > 0 and 'input' not in result['images_per_s']
  why = f'voc/2007 is not prepared in {tmp_path / "tfds"}/voc/2007/'
  assert result['input_skipped'].startswith(why) and 'input' not in result
  lines = capsys.readouterr().out.splitlines()
  assert [line for line in lines if 'input' in line] == [
      f'input figure skipped: {result["input_skipped"]}.']


@pytest.mark.slow
def test_command_line_writes_json_with_scaling(tmp_path):
  """Also: data that is not here (voc in an empty data dir) skips the input figure with one
  line, and the model is timed all the same."""
  out = tmp_path / 'bench.json'
  cmd = [sys.executable, '-m', 'experiments.benchmark', '--config=configs/smoke.py',
         '--config.input.dataset=voc', f'--config.input.data_dir={tmp_path / "tfds"}',
         '--batch_size=2', '--iters=1', '--input_batches=2', '--scaling=configs/smoke.py',
         '--scaling_batches=1', f'--output={out}']
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr
  skipped = [line for line in proc.stdout.splitlines() if 'skipped' in line]
  assert skipped == [f'input figure skipped: voc/2007 is not prepared in {tmp_path / "tfds"}/'
                     'voc/2007/5.0.0 (tfds would download it; set config.input.data_dir to '
                     'where it is).']
  result = json.loads(out.read_text())
  assert 'input' not in result and result['input_skipped'] in skipped[0]
  assert set(FIGURES[:-1]) <= set(result['images_per_s'])
  assert [(r['config'], r['batch_size']) for r in result['scaling']] == [('smoke', 1)]
  assert all(r['train_step'] > 0 and r['inference'] > 0 for r in result['scaling'])
