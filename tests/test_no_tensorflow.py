"""The compute path on a machine without TensorFlow, tfds, clu and pycocotools (a bare
accelerator machine): imports, the benchmark, and a synthetic training run with a checkpoint."""

import json
import os
import subprocess
import sys

import pytest

from tests import blocked_imports


def test_blocked_imports_really_fail():
  proc = blocked_imports.run('''
import importlib.util
for name in ('tensorflow', 'tensorflow_datasets', 'clu', 'pycocotools', 'clu.metric_writers'):
  try:
    __import__(name)
  except ImportError:
    pass
  else:
    raise AssertionError(name + ' imported')
assert importlib.util.find_spec('tensorflow') is None
import ssd_jax.train, ssd_jax.checkpoints, ssd_jax.evaluation, ssd_jax.postprocess
import experiments.benchmark
''')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'no blocked module was imported' in proc.stdout


@pytest.mark.slow
def test_benchmark_train_and_inference_figures(tmp_path):
  out = tmp_path / 'bench.json'
  proc = blocked_imports.run_module('experiments.benchmark', [
      '--config=configs/smoke.py', '--batch_size=2', '--iters=1', '--input_batches=2',
      '--input_dataset=synthetic', f'--output={out}'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'no blocked module was imported' in proc.stdout
  result = json.loads(out.read_text())
  for name in ('train_step', 'inference', 'inference_bs1', 'input'):
    assert result['images_per_s'][name] > 0, name
  assert result['input']['dataset'] == 'synthetic'
  assert result['latency_ms_bs1'] > 0


@pytest.mark.slow
def test_synthetic_training_run_saves_and_restores_a_checkpoint(tmp_path):
  proc = blocked_imports.run(f'''
import os
import jax, numpy as np
from configs import smoke
from ssd_jax import anchors, checkpoints, models, train
config = smoke.get_config()
config.input.dataset = 'synthetic'
config.num_train_steps = 20
config.eval.every_steps = 20
config.checkpoint_every_steps = 10
config.log_every_steps = 10
workdir = {str(tmp_path / 'run')!r}
metrics = train.train_and_evaluate(config, workdir)
assert 0 <= metrics['mAP'] <= 1, metrics
priors = anchors.from_config(config, models.map_sizes_at(config.model))
model = models.create_model(config.model, priors.boxes_per_cell, len(config.input.class_names))
mesh = train.make_mesh()
fresh = train.create_train_state(config, model, jax.random.PRNGKey(1), mesh)
manager = checkpoints.create_manager(workdir, config)
restored, step = checkpoints.restore(manager, fresh, checkpoints.model_signature(config, priors))
assert step == 20 and int(restored.step) == 20, step
assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10', '20']
# The restored kernels are the run's (seed 0, trained), not the fresh state's (seed 1).
changed = jax.tree.map(lambda a, b: a.ndim < 2 or not np.allclose(a, b), restored.params,
                       fresh.params)
assert all(jax.tree.leaves(changed))
# Training on from the restored state: a resumed run continues at step 21.
config.num_train_steps = 22
config.eval.every_steps = 100
train.train_and_evaluate(config, workdir)
restored2, step2 = checkpoints.restore(checkpoints.create_manager(workdir, config), fresh,
                                       checkpoints.model_signature(config, priors))
assert step2 == 22, step2
''')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Resuming from the checkpoint of step 20' in proc.stdout
  assert 'step 20/20' in proc.stdout and 'no blocked module was imported' in proc.stdout


@pytest.mark.slow
def test_a_tf_data_set_without_tensorflow_is_one_line(tmp_path):
  site = tmp_path / 'site'
  site.mkdir()
  (site / 'sitecustomize.py').write_text(blocked_imports.PRELUDE)  # Runs at start-up.
  workdir = tmp_path / 'run'
  env = dict(os.environ, PYTHONPATH=str(site), JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-m', 'ssd_jax.main', '--config=configs/smoke.py',
                         f'--workdir={workdir}'], cwd=blocked_imports.REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      "ssd_jax.main: error: config.input.dataset='shapes' is read with tf.data, which needs "
      "tensorflow and tensorflow-datasets (import of tensorflow halted; None in sys.modules); "
      "without them only input.dataset='synthetic' runs.")
  assert 'Traceback' not in proc.stderr and not workdir.exists()
