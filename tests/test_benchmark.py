"""The benchmark runs end to end on the smoke config and produces every figure (no timings)."""

import json
import math
import os
import subprocess
import sys

from configs import smoke
from experiments import benchmark

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = ('train_step', 'inference', 'inference_bs1', 'forward', 'postprocess',
           'matcher_loss', 'input')


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


def test_command_line_writes_json_with_scaling(tmp_path):
  out = tmp_path / 'bench.json'
  cmd = [sys.executable, '-m', 'experiments.benchmark', '--config=configs/smoke.py',
         f'--config.input.data_dir={tmp_path / "tfds"}', '--batch_size=2', '--iters=1',
         '--input_batches=0', '--scaling=configs/smoke.py', '--scaling_batches=1',
         f'--output={out}']
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  assert set(FIGURES[:-1]) <= set(result['images_per_s'])
  assert [(r['config'], r['batch_size']) for r in result['scaling']] == [('smoke', 1)]
  assert all(r['train_step'] > 0 and r['inference'] > 0 for r in result['scaling'])
