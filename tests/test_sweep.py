"""experiments/sweep.py: a tiny sweep end to end on the smoke config, resume, bad input."""

import contextlib
import csv
import io
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import smoke
from experiments import sweep
from experiments import sweep_results
from experiments import sweeps
from ssd_jax import anchors
from ssd_jax import checkpoints
from ssd_jax import errors
from ssd_jax import models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 2


@pytest.fixture(scope='module')
def base(tmp_path_factory):
  config = smoke.get_config()
  config.input.data_dir = str(tmp_path_factory.mktemp('tfds'))
  config.checkpoint_every_steps = 1
  return config


def _read(path):
  with open(path, 'rb') as f:
    return f.read()


@pytest.fixture(scope='module')
def swept(base, tmp_path_factory):
  """Variant 0 alone (a cluster job), then the whole sweep crashing in variant 1 after its
  first checkpoint, then the same command again.

  Returns (workdir, what the first call returned, the rows of the last, the printed output of
  each call, (variant 0's result file, results.md, whether variant 1 had a folder) after the
  first call).
  """
  workdir = str(tmp_path_factory.mktemp('sweep'))
  outputs = []

  def call(**extra):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      try:
        return sweep.run_sweep(base, 'smoke', workdir, steps=STEPS, **extra)
      finally:
        outputs.append(out.getvalue())

  first = call(variant=0, benchmark_iters=1)
  results_after_first = (_read(os.path.join(workdir, 'config', sweep.RESULT)),
                         _read(os.path.join(workdir, 'results.md')).decode(),
                         os.path.exists(os.path.join(workdir, 'one_box')))
  real_save = checkpoints.save

  def save_then_crash(manager, step, *args, **kw):
    real_save(manager, step, *args, **kw)
    if 'one_box' in str(manager.directory) and step == 1:
      manager.wait_until_finished()
      raise KeyboardInterrupt('simulated kill')
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(checkpoints, 'save', save_then_crash)
    with pytest.raises(KeyboardInterrupt):
      call(benchmark_iters=0)
  rows = call(benchmark_iters=0)  # (saves test time: one_box gets no images/s)
  return workdir, first, rows, outputs, results_after_first


@pytest.mark.slow
def test_a_single_variant_runs_alone(swept):
  _, first, _, outputs, (_, markdown, one_box_started) = swept
  assert first is None  # the sweep is not finished after variant 0
  assert "variant 1/2 'config', seed 0" in outputs[0] and "variant 2/2" not in outputs[0]
  assert not one_box_started
  assert '| config | 4/6/6/4 |' in markdown and '| one_box' not in markdown
  assert 'Not finished yet: one_box' in markdown


@pytest.mark.slow
def test_rerun_trains_only_the_unfinished_variant_and_resumes_it(swept):
  workdir, _, rows, outputs, results_after_first = swept
  crashed, rerun = outputs[1], outputs[2]
  assert "variant 1/2 'config'" not in crashed  # finished: skipped
  assert "variant 2/2 'one_box'" in crashed
  assert "variant 1/2 'config'" not in rerun
  assert 'Resuming from the checkpoint of step 1' in rerun
  assert f'step {STEPS}/{STEPS}' in rerun and 'step 1/' not in rerun
  assert _read(os.path.join(workdir, 'config', sweep.RESULT)) == results_after_first[0]
  assert rows is not None and [r['variant'] for r in rows] == ['config', 'one_box']


@pytest.mark.slow
def test_results_files_have_one_row_per_variant(swept):
  workdir, _, rows, _, _ = swept
  with open(os.path.join(workdir, 'results.csv')) as f:
    table = list(csv.DictReader(f))
  assert [r['variant'] for r in table] == ['config', 'one_box']
  priors_col = [c for c in table[0] if 'priors' in c]
  map_col = [c for c in table[0] if 'mAP' in c]
  assert priors_col and 'mAP' in map_col and {'mAP_small', 'mAP_medium', 'mAP_large'} <= set(
      map_col)
  for r, name in zip(table, ['config', 'one_box']):
    with open(os.path.join(workdir, name, sweep.RESULT)) as f:
      result = json.load(f)
    assert float(r['mAP']) == pytest.approx(result['metrics']['mAP'])
    assert result['steps'] == STEPS
    assert float(r['positives_per_object']) >= 0
  assert float(table[0]['train_images_per_s']) > 0
  assert float(table[0]['inference_images_per_s']) > 0
  assert table[1]['train_images_per_s'] == table[1]['inference_images_per_s'] == ''
  assert table[1]['boxes_per_cell'] == '1/1/1/1'
  markdown = open(os.path.join(workdir, 'results.md')).read()
  assert '| config | 4/6/6/4 |' in markdown and '| one_box | 1/1/1/1 |' in markdown
  assert 'Not finished' not in markdown
  assert _read(os.path.join(workdir, 'results.png')).startswith(b'\x89PNG')


@pytest.mark.slow
def test_prior_counts_equal_the_models(swept, base):
  workdir, *_ = swept
  with open(os.path.join(workdir, 'results.csv')) as f:
    table = {r['variant']: r for r in csv.DictReader(f)}
  for name, overrides in sweeps.SMOKE:
    config = sweep.apply_overrides(base, name, overrides)
    model = models.create_model(config.model, anchors.boxes_per_cell(config))
    images = jnp.zeros((1, 96, 96, 3))
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
    loc, _ = jax.eval_shape(model.apply, variables, images)
    assert int(table[name]['priors']) == loc.shape[1]
  # Independent count for one_box: one box per cell on maps 12, 6, 3, 2.
  assert int(table['one_box']['priors']) == 144 + 36 + 9 + 4


@pytest.mark.slow
def test_positives_per_object_counts_default_boxes_over_the_threshold(swept, base):
  """The column equals a brute-force count over the validation ground truth."""
  from experiments import prior_coverage  # pylint: disable=g-import-not-at-top
  from ssd_jax import anchors  # pylint: disable=g-import-not-at-top
  from tests import numpy_reference  # pylint: disable=g-import-not-at-top
  workdir, *_ = swept
  with open(os.path.join(workdir, 'results.csv')) as f:
    table = {r['variant']: r for r in csv.DictReader(f)}
  gt = prior_coverage.eval_ground_truth(base.copy_and_resolve_references(), None)
  corners = numpy_reference.priors_to_corners(anchors.default_boxes(base))
  hits = [sum(numpy_reference.iou_one(g, p) >= base.loss.iou_threshold for p in corners)
          for g in gt]
  assert float(table['config']['positives_per_object']) == pytest.approx(np.mean(hits))


@pytest.mark.slow
def test_bad_input_is_one_line_and_overwrites_nothing(swept, base, monkeypatch, tmp_path):
  workdir, *_ = swept
  before = {n: _read(os.path.join(workdir, n)) for n in ('results.csv', 'sweep.json')}
  with pytest.raises(errors.UserError, match=r"Unknown sweep 'smok'.*Did you mean 'smoke'"):
    sweep.run_sweep(base, 'smok', workdir, steps=STEPS)
  with pytest.raises(errors.UserError, match=r'--variant=2 is out of range.*2 variants'):
    sweep.run_sweep(base, 'smoke', workdir, steps=STEPS, variant=2)
  with pytest.raises(errors.UserError, match=r"holds results of sweep 'smoke', not "
                                             r"'default_boxes'"):
    sweep.run_sweep(base, 'default_boxes', workdir, steps=STEPS)
  with pytest.raises(errors.UserError, match=r'another base config \(num_train_steps: 2'):
    sweep.run_sweep(base, 'smoke', workdir, steps=3)
  monkeypatch.setitem(sweeps.SWEEPS, 'smoke', sweeps.SMOKE + (
      ('typo', {'anchors.aspect_ratio': ((2,),) * 7}),))
  with pytest.raises(errors.UserError, match=r"variant 'typo': anchors.aspect_ratio: no such "
                                             r"config key; did you mean anchors.aspect_ratios\?"):
    sweep.run_sweep(base, 'smoke', workdir, steps=STEPS)
  monkeypatch.setitem(sweeps.SWEEPS, 'smoke', (('config', {'model.width': 0.5}),))
  with pytest.raises(errors.UserError, match=r"ran variant 'config' with overrides \{\}"):
    sweep.run_sweep(base, 'smoke', workdir, steps=STEPS)
  assert {n: _read(os.path.join(workdir, n)) for n in before} == before
  (tmp_path / 'other').mkdir()
  (tmp_path / 'other' / 'checkpoints').mkdir()
  with pytest.raises(errors.UserError, match='not empty and has no sweep.json'):
    sweep.run_sweep(base, 'smoke', str(tmp_path / 'other'), steps=STEPS)
  assert os.listdir(tmp_path / 'other') == ['checkpoints']


@pytest.mark.slow
def test_collect_only_tabulates(swept, base, monkeypatch):
  workdir, *_ = swept
  monkeypatch.setattr(sweep, '_train', lambda *a: pytest.fail('collect trained'))
  rows = sweep.run_sweep(base, 'smoke', workdir, steps=STEPS, collect=True)
  assert [r['variant'] for r in rows] == ['config', 'one_box']


@pytest.mark.slow
def test_command_line_error_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep', '--config=configs/smoke.py',
       '--sweep=nope', f'--workdir={tmp_path / "w"}'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      "experiments.sweep: error: Unknown sweep 'nope'")
  assert not (tmp_path / 'w').exists()


def test_seeds_give_mean_and_sample_std():
  runs = [{'metrics': {'mAP': m, 'mAP_small': s}, 'boxes_per_cell': [4, 6], 'priors': 10,
           'positives_per_object': 1.5, 'train_images_per_s': 3.0,
           'inference_images_per_s': 9.0} for m, s in ((0.2, 0.1), (0.4, float('nan')))]
  row = sweep_results.variant_row('v', {}, runs)
  assert row['mAP'] == pytest.approx(0.3)
  assert row['mAP_std'] == pytest.approx(np.sqrt(0.02))  # sample std of 0.2, 0.4
  assert row['mAP_small'] == pytest.approx(0.1) and row['mAP_large'] is None
  assert row['seeds'] == 2 and row['boxes_per_cell'] == '4/6'


@pytest.mark.parametrize('name', [name for name, _ in sweeps.SOURCE_LAYERS])
def test_source_layers_predict_from_the_coarser_maps(name):
  """shapes (maps 32, 16, 8, 4, 2, 1): each removed map takes its cells and its head away."""
  from configs import shapes  # pylint: disable=g-import-not-at-top
  from ssd_jax import anchors  # pylint: disable=g-import-not-at-top
  overrides = dict(sweeps.SOURCE_LAYERS)[name]
  base = shapes.get_config()
  if name != 'all_maps':  # The config's eval scales name maps 0 .. 5, which these lack.
    with pytest.raises(errors.UserError, match=f"'{name}' gives an invalid model: "
                       r'config.eval.scales: maps 0 .. 5 of \(128, 0, 6\)'):
      sweep.apply_overrides(base, name, overrides)
  base.eval.scales = None  # As docs/sweeps.md runs this sweep on shapes.
  config = sweep.apply_overrides(base, name, overrides)
  skip = config.model.skip_sources
  maps = [32, 16, 8, 4, 2, 1][skip:]
  per_cell = anchors.boxes_per_cell(config)
  assert len(per_cell) == len(maps)
  model = models.create_model(config.model, anchors.boxes_per_cell(config))
  images = jnp.zeros((1, 128, 128, 3))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
  loc, _ = jax.eval_shape(model.apply, variables, images)
  assert loc.shape[1] == sum(f * f * k for f, k in zip(maps, per_cell))
  assert sorted(k for k in variables['params'] if k.startswith('loc_')) == [
      f'loc_{i}' for i in range(len(maps))]
  # The first prior sits in the first cell of the finest remaining map.
  np.testing.assert_allclose(anchors.default_boxes(config)[0, :2], [0.5 / maps[0]] * 2)
