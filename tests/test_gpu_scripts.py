"""experiments/gpu/run.sh in its test mode (CPU, smoke config, batch 2, no install), with
TensorFlow, tfds, clu and pycocotools made unimportable as on a bare GPU machine."""

import json
import os
import subprocess
import sys

import pytest

from tests import blocked_imports

REPO = blocked_imports.REPO


@pytest.mark.slow
def test_run_sh_test_mode_writes_the_suite_without_tensorflow(tmp_path):
  site = tmp_path / 'site'
  site.mkdir()
  # sitecustomize runs at start-up in every Python the script starts.
  (site / 'sitecustomize.py').write_text(blocked_imports.PRELUDE)
  out = tmp_path / 'out'
  env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(site), JAX_PLATFORMS='cpu')
  proc = subprocess.run(['bash', 'experiments/gpu/run.sh', '--test', str(out)], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  doc = json.loads((out / 'suite.json').read_text())
  figures = {(r['dtype'], r['figure']) for r in doc['rows']}
  assert figures == {(d, f) for d in ('bfloat16', 'float32')
                     for f in ('inference', 'inference_bs1', 'train_step')}
  assert all(r['images_per_s'] > 0 and r['ms_per_call'] > 0 for r in doc['rows'])
  assert not doc['skipped']
  summary = (out / 'summary.md').read_text()
  assert summary.count('| smoke |') == len(doc['rows']) == 6
  assert 'tensorflow' not in (out / 'run.log').read_text().lower()


def test_run_sh_refuses_an_empty_wheel_folder(tmp_path):
  env = dict(os.environ, WHEEL_DIR=str(tmp_path / 'none'))
  proc = subprocess.run(['bash', 'experiments/gpu/run.sh', str(tmp_path / 'out')], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith('run.sh: error: no wheels in ')
