"""Data parallelism over 8 simulated CPU devices (a fresh process with
--xla_force_host_platform_device_count=8): the same step as on one device, and a global batch
that does not split over the devices is refused in one line."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')

SCRIPT = r'''
import jax, numpy as np
from configs import smoke
from ssd_jax import anchors, models, train
from ssd_jax.data import synthetic
assert jax.device_count() == 8, jax.devices()
config = smoke.get_config()
config.input.dataset = 'synthetic'
config.input.batch_size = config.input.eval_batch_size = 8
config.optimizer.warmup_steps = 0
priors = anchors.from_config(config, models.map_sizes_at(config.model))
model = models.create_model(config.model, priors.boxes_per_cell, len(config.input.class_names))
batch = next(synthetic.train_batches(config))
init, out = None, {}
for n in (1, 8):
  mesh = train.make_mesh(jax.devices()[:n])
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), mesh)
  if init is None:
    init = jax.device_get(state.params)
  step_fn, _ = train.compile_steps(config, mesh, state.apply_fn, priors)
  state, metrics = step_fn(state, train.global_batch(batch, mesh, train.STEP_KEYS))
  out[n] = (float(metrics['loss']), jax.device_get(state.params))
  assert len(state.params['conf_0']['kernel'].sharding.device_set) == n
def rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
loss_rel = abs(out[8][0] - out[1][0]) / abs(out[1][0])
param_rel = max(jax.tree.leaves(jax.tree.map(rel, out[8][1], out[1][1])))
# The updates themselves (new - initial params), a stricter comparison than the params.
update_rel = max(jax.tree.leaves(jax.tree.map(lambda a, b, i: rel(a - i, b - i), out[8][1],
                                              out[1][1], init)))
print('relative differences: loss', loss_rel, 'params', param_rel, 'updates', update_rel)
assert loss_rel <= 1e-5 and param_rel <= 1e-5 and update_rel <= 1e-5, (
    loss_rel, param_rel, update_rel)
'''


@pytest.mark.slow
def test_train_step_on_8_devices_equals_one_device():
  proc = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, env=ENV, capture_output=True,
                        text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'relative differences' in proc.stdout


@pytest.mark.slow
def test_batch_not_divisible_by_devices_fails_in_one_line(tmp_path):
  workdir = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, '-m', 'ssd_jax.main', '--config=configs/smoke.py', f'--workdir={workdir}',
       '--config.input.dataset=synthetic', '--config.input.batch_size=12'],
      cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 1
  errors = [line for line in proc.stderr.splitlines() if 'error' in line.lower()]
  assert errors == ['ssd_jax.main: error: config.input.batch_size=12 must be a positive '
                    'multiple of the 8 devices (the global batch is split evenly over them); '
                    'e.g. 8.'], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  assert not workdir.exists()
