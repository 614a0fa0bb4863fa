"""experiments/sweep.py: a tiny sweep end to end on the smoke config (slow), resume, bad input;
the statistics, user-defined sweeps and --collect on fake finished runs (no training)."""

import contextlib
import csv
import io
import json
import math
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
from experiments import sweep_variants
from experiments import sweeps
from ssd_jax import checkpoints
from ssd_jax import errors
from tests import model_setup

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
    model = model_setup.create_model(config)
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
  from tests import numpy_reference  # pylint: disable=g-import-not-at-top
  workdir, *_ = swept
  with open(os.path.join(workdir, 'results.csv')) as f:
    table = {r['variant']: r for r in csv.DictReader(f)}
  gt = prior_coverage.eval_ground_truth(base.copy_and_resolve_references(), None)
  corners = numpy_reference.priors_to_corners(model_setup.default_boxes(base).boxes)
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
  with pytest.raises(errors.UserError, match=r'sweep of 2 training steps per run, and this '
                                             r'call asks for 3.*give --steps=2'):
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
  runs = [{'seed': k, 'metrics': {'mAP': m, 'mAP_small': s}, 'boxes_per_cell': [4, 6],
           'priors': 10, 'positives_per_object': 1.5, 'train_images_per_s': 3.0,
           'inference_images_per_s': 9.0} for k, (m, s) in enumerate(((0.2, 0.1),
                                                                       (0.4, float('nan'))))]
  row = sweep_results.variant_row('v', {}, runs)
  assert row['mAP'] == pytest.approx(0.3)
  assert row['mAP_std'] == pytest.approx(np.sqrt(0.02))  # sample std of 0.2, 0.4
  assert row['mAP_small'] == pytest.approx(0.1) and row['mAP_large'] is None
  assert row['seeds'] == 2 and row['boxes_per_cell'] == '4/6'


@pytest.mark.parametrize('name', [name for name, _ in sweeps.SOURCE_LAYERS])
def test_source_layers_predict_from_the_coarser_maps(name):
  """shapes (maps 32, 16, 8, 4, 2, 1): each removed map takes its head away, and its boxes
  go to the finest remaining map as stacked scales, so the total stays within 10% of the full
  model's; the config's multi-scale eval.scales stay valid."""
  from configs import shapes  # pylint: disable=g-import-not-at-top
  overrides = dict(sweeps.SOURCE_LAYERS)[name]
  base = shapes.get_config()
  full = model_setup.default_boxes(base)
  config = sweep.apply_overrides(base, name, overrides)  # With shapes' eval.scales.
  skip = config.model.skip_sources
  maps = [32, 16, 8, 4, 2, 1][skip:]
  priors = model_setup.default_boxes(config)
  per_cell = priors.boxes_per_cell
  assert len(per_cell) == len(maps)
  # The remaining maps keep their own boxes; the finest one also carries the removed maps'.
  assert per_cell[1:] == full.boxes_per_cell[skip + 1:]
  removed = sum(f * f * k for f, k in zip([32, 16][:skip], full.boxes_per_cell))
  assert (per_cell[0] - full.boxes_per_cell[skip]) * maps[0] ** 2 == removed
  total = sum(f * f * k for f, k in zip(maps, per_cell))
  assert abs(total - 6142) <= 0.1 * 6142
  model = model_setup.create_model(config)
  images = jnp.zeros((1, 128, 128, 3))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
  loc, _ = jax.eval_shape(model.apply, variables, images)
  assert loc.shape[1] == total == priors.boxes.shape[0]
  assert sorted(k for k in variables['params'] if k.startswith('loc_')) == [
      f'loc_{i}' for i in range(len(maps))]
  # The first prior sits in the first cell of the finest remaining map.
  np.testing.assert_allclose(priors.boxes[0, :2], [0.5 / maps[0]] * 2)
  # shapes' ((224, 0, 2), (128, 0, 6), (96, 2, 6)): skipped maps stand for the finest one.
  assert priors.eval_scales.maps == ((224, skip, max(2, skip + 1)), (128, skip, 6), (96, 2, 6))


def test_stacked_scales_cover_the_removed_maps_sizes():
  """stack_removed_maps: a removed map's [min, max) is split evenly in log into (f / f_t)^2
  scales with its ratios, each with its sqrt(min * max) square: by hand for shapes."""
  from configs import shapes  # pylint: disable=g-import-not-at-top
  stacked = sweeps.stack_removed_maps(shapes.get_config(), 1)['anchors.stacked_scales']
  q = 2 ** 0.25  # conv3's 11 .. 22 px in 4 steps (32^2 / 16^2 cells).
  assert [len(m) for m in stacked] == [0, 4, 0, 0, 0, 0]
  np.testing.assert_allclose([lo for lo, _, _ in stacked[1]], [11 * q ** i for i in range(4)],
                             atol=0.005)
  np.testing.assert_allclose([hi for _, hi, _ in stacked[1]],
                             [11 * q ** (i + 1) for i in range(4)], atol=0.005)
  assert {r for _, _, r in stacked[1]} == {(2,)}  # conv3's own ratios.
  config = shapes.get_config()
  config.anchors.extra_scale = False
  no_extra = sweeps.stack_removed_maps(config, 2)['anchors.stacked_scales'][2]
  assert len(no_extra) == 16 + 4 and all(hi is None for _, hi, _ in no_extra)


def test_stacking_on_the_scale_rule_keeps_the_full_models_sizes(smoke_base):
  """smoke uses the scale rule (maps 12, 6, 3, 2): the variant sets the full model's sizes, so
  the remaining maps keep theirs, and map 0's 144 cells x 4 boxes become 36 x 16."""
  full = model_setup.default_boxes(smoke_base)
  config = sweep.apply_overrides(smoke_base, 'no_finest',
                                 sweeps.stack_removed_maps(smoke_base, 1))
  priors = model_setup.default_boxes(config)
  np.testing.assert_allclose(priors.min_sizes, full.min_sizes[1:], atol=0.005)
  np.testing.assert_allclose(priors.max_sizes, full.max_sizes[1:], atol=0.005)
  assert priors.boxes_per_cell == (6 + 16, 6, 4)
  assert priors.boxes.shape == full.boxes.shape


# --- Statistics -------------------------------------------------------------------------------

# Published two-sided 95% t quantiles t_{0.975, df} (any statistics table).
@pytest.mark.parametrize('df, quantile', [(1, 12.706205), (2, 4.302653), (4, 2.776445),
                                          (10, 2.228139), (30, 2.042272)])
def test_t_quantile_matches_the_tables(df, quantile):
  assert sweep_results.t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-6)


@pytest.mark.parametrize('p', [0.6, 0.9, 0.975, 0.995])
def test_t_quantile_matches_closed_forms(p):
  """df 1 is the Cauchy distribution; df 2 has F^-1(p) = (2p - 1) / sqrt(2p(1 - p))."""
  assert sweep_results.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)))
  assert sweep_results.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)))


def _runs(maps, seeds=None):
  """Finished-run records (as sweep_result.json) with these mAPs at seeds 0, 1, ..."""
  return [{'seed': k, 'metrics': {'mAP': m}, 'boxes_per_cell': [4], 'priors': 10,
           'positives_per_object': None, 'train_images_per_s': None,
           'inference_images_per_s': None}
          for k, m in zip(seeds or range(len(maps)), maps)]


# By hand: reference 0.50, 0.60, 0.55 and variant 0.53, 0.64, 0.60 over seeds 0, 1, 2.
# Variant: mean 0.59, deviations -0.06, 0.05, 0.01, std sqrt(0.0062 / 2) = 0.0556776.
# Differences 0.03, 0.04, 0.05: mean 0.04, std 0.01, half-width t_{0.975,2} * 0.01 / sqrt(3)
# = 4.302653 * 0.00577350 = 0.0248414, so [0.0151586, 0.0648414]: excludes 0. Unpaired, the
# variant's own spread (0.056) is larger than the difference; pairing by seed removes it.
REFERENCE = (0.50, 0.60, 0.55)
BETTER = (0.53, 0.64, 0.60)
NOISE = (0.52, 0.57, 0.56)  # differences 0.02, -0.03, 0.01: mean 0, [-0.0657, 0.0657]


def test_statistics_of_a_hand_computed_case():
  row = sweep_results.variant_row('better', {}, _runs(BETTER), _runs(REFERENCE))
  assert row['mAP'] == pytest.approx(0.59)
  assert row['mAP_std'] == pytest.approx(0.0556776, abs=1e-7)
  assert row['mAP_diff'] == pytest.approx(0.04)
  assert row['mAP_diff_low'] == pytest.approx(0.0151586, abs=1e-7)
  assert row['mAP_diff_high'] == pytest.approx(0.0648414, abs=1e-7)
  assert row['diff_pairs'] == 3 and row['diff_excludes_zero'] is True
  assert sweep_results.difference_cell(row) == '+0.040 [+0.015, +0.065] *'


def test_a_variant_that_differs_only_by_noise_is_not_marked():
  row = sweep_results.variant_row('noise', {}, _runs(NOISE), _runs(REFERENCE))
  assert row['mAP_diff'] == pytest.approx(0.0, abs=1e-12)
  # std of 0.02, -0.03, 0.01 is sqrt(0.0014 / 2); half-width 4.302653 * 0.0264575 / sqrt(3).
  assert row['mAP_diff_high'] == pytest.approx(4.302653 * math.sqrt(0.0007) / math.sqrt(3))
  assert row['diff_excludes_zero'] is False
  assert '*' not in sweep_results.difference_cell(row)


def test_differences_pair_only_the_seeds_both_have():
  # The variant lacks seed 1: pairs are seeds 0 and 2 (0.03, 0.05), df 1.
  row = sweep_results.variant_row('v', {}, _runs((0.53, 0.60), seeds=(0, 2)), _runs(REFERENCE))
  assert row['diff_pairs'] == 2 and row['mAP_diff'] == pytest.approx(0.04)
  half = 12.706205 * np.std([0.03, 0.05], ddof=1) / math.sqrt(2)
  assert row['mAP_diff_low'] == pytest.approx(0.04 - half, abs=1e-6)
  fewer = sweep_results.variant_row('v', {}, _runs(BETTER), _runs((0.50, 0.55), seeds=(0, 2)))
  assert fewer['diff_pairs'] == 2 and sweep_results.difference_cell(fewer).endswith(
      '] (2 pairs)')
  one = sweep_results.variant_row('v', {}, _runs((0.53,)), _runs(REFERENCE))
  assert one['diff_pairs'] == 1 and one['mAP_diff_low'] is None
  assert sweep_results.difference_cell(one) == '+0.030 (1 pair: no interval)'


# --- Sweeps on fake finished runs (training replaced by a table of mAPs) -----------------------

THREE = sweep_variants.Sweep('three', (('config', {}),
                              ('one_box', dict(sweeps.SMOKE)['one_box']),
                              ('no_extra', {'anchors.extra_scale': False})))
MAPS = {'config': REFERENCE, 'one_box': BETTER, 'no_extra': NOISE}


@pytest.fixture
def fake(monkeypatch):
  """run_sweep with `_train` replaced: the mAP of (variant, seed) comes from `fake.maps`; the
  trained runs are listed in `fake.trained`, their configs in `fake.configs`."""
  class Fake:
    maps = dict(MAPS)
    trained = []
    configs = {}
  def train(config, run_dir):
    head, tail = os.path.split(run_dir)
    variant, seed = (os.path.basename(head), int(tail[5:])) if tail.startswith('seed_') else (
        tail, 0)
    Fake.trained.append((variant, seed))
    Fake.configs[variant, seed] = config
    return {'mAP': Fake.maps[variant][seed]}
  monkeypatch.setattr(sweep, '_train', train)
  monkeypatch.setattr(sweep._Measurements, 'positives_per_object', lambda self, config: 2.0)
  return Fake


@pytest.fixture(scope='module')
def smoke_base():
  return smoke.get_config()


def _run(base, sweep_, workdir, **kw):
  return sweep.run_sweep(base, sweep_, str(workdir), steps=STEPS, benchmark_iters=0, **kw)


def _snapshot(folder):
  """Every file under `folder` with its bytes (None if the folder does not exist)."""
  if not os.path.exists(folder):
    return None
  return {os.path.relpath(os.path.join(d, f), folder): _read(os.path.join(d, f))
          for d, _, files in os.walk(folder) for f in files}


def test_results_give_mean_std_and_marked_paired_differences(fake, smoke_base, tmp_path):
  command = ['--config=configs/smoke.py', '--sweep=my.py', f'--workdir={tmp_path}',
             '--seeds', '2', '--collect']
  rows = _run(smoke_base, THREE, tmp_path, seeds=3, command=command)
  assert sorted(fake.trained) == sorted((v, k) for v in MAPS for k in range(3))
  assert [fake.configs['one_box', k].seed for k in range(3)] == [smoke_base.seed + k
                                                                 for k in range(3)]
  by_name = {r['variant']: r for r in rows}
  assert by_name['config']['is_reference'] and by_name['config']['mAP_diff'] is None
  assert by_name['one_box']['diff_excludes_zero'] is True
  assert by_name['no_extra']['diff_excludes_zero'] is False
  markdown = open(tmp_path / 'results.md').read()
  table = {line.split(' | ')[0][2:]: line for line in markdown.splitlines()
           if line.startswith('| ') and 'variant' not in line}
  assert ' | 0.550 ± 0.050 | reference |' in table['config']
  assert ' | 3 | 0.590 ± 0.056 | +0.040 [+0.015, +0.065] * |' in table['one_box']
  assert '*' not in table['no_extra']
  assert f'{STEPS} training steps per run; seeds 0, 1, 2 ' in markdown
  assert ('Reproduce: `python -m experiments.sweep --config=configs/smoke.py --sweep=my.py '
          f'--workdir={tmp_path} --steps={STEPS} --seeds=3 --reference=config`') in markdown
  with open(tmp_path / 'results.csv') as f:
    csv_rows = {r['variant']: r for r in csv.DictReader(f)}
  assert float(csv_rows['one_box']['mAP_diff_low']) == pytest.approx(0.0151586, abs=1e-6)
  assert csv_rows['one_box']['diff_excludes_zero'] == 'True'
  assert csv_rows['config']['mAP_diff'] == ''
  assert _read(tmp_path / 'results.png').startswith(b'\x89PNG')
  # Another reference: the same pairs, the sign turned.
  rows = _run(smoke_base, THREE, tmp_path, seeds=3, reference='one_box', collect=True)
  assert {r['variant']: r['mAP_diff'] for r in rows}['config'] == pytest.approx(-0.04)
  assert 'paired difference to `one_box`' in open(tmp_path / 'results.md').read()


def test_reference_defaults_to_the_variant_that_is_the_base_config(smoke_base):
  base, variants = sweep.sweep_configs(smoke_base, THREE, STEPS)
  assert sweep.default_reference(base, variants) == 'config'
  same = sweep_variants.Sweep('s', (('one_box', dict(sweeps.SMOKE)['one_box']),
                           ('as_base', {'anchors.extra_scale': True})))
  assert sweep.default_reference(*sweep.sweep_configs(smoke_base, same, STEPS)) == 'as_base'
  other = sweep_variants.Sweep('s', (('one_box', dict(sweeps.SMOKE)['one_box']),
                            ('no_extra', {'anchors.extra_scale': False})))
  assert sweep.default_reference(*sweep.sweep_configs(smoke_base, other, STEPS)) == 'one_box'


def test_collect_uses_every_finished_seed_or_names_those_left_out(fake, smoke_base, tmp_path,
                                                                 capsys):
  _run(smoke_base, THREE, tmp_path, seeds=2)
  before = _read(tmp_path / 'sweep.json')
  fake.trained.clear()
  # No --seeds and no --steps: both from the folder.
  rows = sweep.run_sweep(smoke_base, THREE, str(tmp_path), collect=True, benchmark_iters=0)
  assert not fake.trained and [r['seeds'] for r in rows] == [2, 2, 2]
  assert 'seeds 0, 1 ' in open(tmp_path / 'results.md').read()
  assert _read(tmp_path / 'sweep.json') == before
  # --seeds=1 tabulates seed 0 and says which finished runs it left out.
  rows = sweep.run_sweep(smoke_base, THREE, str(tmp_path), collect=True, seeds=1,
                         benchmark_iters=0)
  assert [r['seeds'] for r in rows] == [1, 1, 1]
  left = 'config (seed 1), one_box (seed 1), no_extra (seed 1)'
  assert f'Finished but left out (beyond --seeds=1): {left}.' in open(
      tmp_path / 'results.md').read()
  assert left in capsys.readouterr().out
  # A seed finished by hand beyond sweep.json's 2 is found on disk too.
  fake.maps['config'] = REFERENCE + (0.5,)
  _run(smoke_base, sweep_variants.Sweep('three', THREE.variants[:1]), tmp_path, seeds=4, variant=0)
  rows = sweep.run_sweep(smoke_base, THREE, str(tmp_path), collect=True, benchmark_iters=0)
  assert rows is None  # seeds 2, 3 of one_box and no_extra are not finished
  markdown = open(tmp_path / 'results.md').read()
  assert 'Not finished yet: one_box (2 of 4 runs), no_extra (2 of 4 runs).' in markdown
  assert '| config | 4/6/6/4 | ' in markdown and ' | 4 | ' in markdown


def test_collect_on_a_folder_that_is_no_sweep_creates_nothing(fake, smoke_base, tmp_path):
  _run(smoke_base, THREE, tmp_path / 'sweep', seeds=1)
  typo = tmp_path / 'swep'
  with pytest.raises(errors.UserError, match=r'--collect: .*swep is not a sweep folder \(it '
                                             r'has no sweep.json\); check --workdir'):
    sweep.run_sweep(smoke_base, THREE, str(typo), collect=True)
  assert not typo.exists()
  (tmp_path / 'empty').mkdir()
  with pytest.raises(errors.UserError, match='is not a sweep folder'):
    sweep.run_sweep(smoke_base, THREE, str(tmp_path / 'empty'), collect=True)
  assert os.listdir(tmp_path / 'empty') == []


def test_bad_input_changes_nothing_on_disk(fake, smoke_base, tmp_path):
  _run(smoke_base, THREE, tmp_path / 'w', seeds=2)
  before = _snapshot(tmp_path / 'w')
  fake.trained.clear()
  cases = [
      (dict(seeds=0), r'--seeds=0; expected 1 or more'),
      (dict(reference='confg'), r"--reference=confg names no variant of sweep 'three' \(config, "
                                r"one_box, no_extra\). Did you mean 'config'\?"),
      (dict(steps=STEPS + 1), rf'sweep of {STEPS} training steps per run, and this call asks '
                              rf'for {STEPS + 1}'),
      (dict(steps=STEPS + 1, collect=True), rf'asks for {STEPS + 1}'),
  ]
  for kw, message in cases:
    args = {'steps': STEPS, 'benchmark_iters': 0, **kw}
    with pytest.raises(errors.UserError, match=message):
      sweep.run_sweep(smoke_base, THREE, str(tmp_path / 'w'), **args)
    if 'steps' not in kw:  # (a new folder has no steps yet)
      with pytest.raises(errors.UserError, match=message):
        sweep.run_sweep(smoke_base, THREE, str(tmp_path / 'new'), **args)
  # Without --steps the config's 8 steps differ from the folder's too.
  with pytest.raises(errors.UserError, match=rf'asks for 8 .*give --steps={STEPS}'):
    sweep.run_sweep(smoke_base, THREE, str(tmp_path / 'w'), benchmark_iters=0)
  assert _snapshot(tmp_path / 'w') == before and not fake.trained
  assert _snapshot(tmp_path / 'new') is None


def test_a_result_of_other_steps_is_never_tabulated(fake, smoke_base, tmp_path):
  _run(smoke_base, THREE, tmp_path, seeds=1)
  path = tmp_path / 'one_box' / sweep.RESULT
  result = json.loads(path.read_text())
  result['steps'] = STEPS + 10  # e.g. copied in from another sweep
  path.write_text(json.dumps(result))
  before = _snapshot(tmp_path)
  with pytest.raises(errors.UserError, match=rf'one_box/sweep_result.json trained {STEPS + 10} '
                                             rf'steps, the table {STEPS}'):
    sweep.run_sweep(smoke_base, THREE, str(tmp_path), collect=True)
  assert _snapshot(tmp_path) == before


def test_reproduce_command_rewrites_the_table_flags():
  argv = ['--config=configs/shapes.py', '--sweep=default_boxes', '--workdir=w b', '--collect',
          '--seeds', '2', '--variant=1', '--reference', 'x', '--config.eval.scales=None']
  assert sweep._reproduce(argv, 600, 3, 'config') == (
      "python -m experiments.sweep --config=configs/shapes.py --sweep=default_boxes "
      "'--workdir=w b' --config.eval.scales=None --steps=600 --seeds=3 --reference=config")


# --- Sweeps defined by the user ---------------------------------------------------------------

def _with_max_sizes(base):
  config = base.copy_and_resolve_references()
  config.anchors.max_sizes = (24, 48, 72, 96)
  return config


def test_vary_is_a_one_key_sweep(fake, smoke_base, tmp_path):
  base = _with_max_sizes(smoke_base)
  vary = sweep_variants.parse_vary('anchors.min_sizes=(10, 20, 40, 60),(12, 24, 48, 72)', base)
  assert vary.name == 'vary anchors.min_sizes'
  assert vary.variants == (('min_sizes_10_20_40_60', {'anchors.min_sizes': (10, 20, 40, 60)}),
                           ('min_sizes_12_24_48_72', {'anchors.min_sizes': (12, 24, 48, 72)}))
  fake.maps.update({name: (0.5,) for name, _ in vary.variants})
  rows = _run(base, vary, tmp_path)
  assert [r['variant'] for r in rows] == ['min_sizes_10_20_40_60', 'min_sizes_12_24_48_72']
  assert rows[0]['is_reference']  # neither is the base config: the first is the reference
  for name, overrides in vary.variants:  # each run trained the config it names
    assert tuple(fake.configs[name, 0].anchors.min_sizes) == overrides['anchors.min_sizes']
    assert fake.configs[name, 0].anchors.max_sizes == base.anchors.max_sizes
  # Another value extends the sweep: only it is trained.
  fake.trained.clear()
  more = sweep_variants.parse_vary(
      'anchors.min_sizes=(10, 20, 40, 60),(12, 24, 48, 72),(8,16,32,64)', base)
  fake.maps['min_sizes_8_16_32_64'] = (0.4,)
  assert len(_run(base, more, tmp_path)) == 3
  assert fake.trained == [('min_sizes_8_16_32_64', 0)]


@pytest.mark.parametrize('text, value', [
    ('anchors.s_min=0.1,0.15', [0.1, 0.15]),
    ('anchors.extra_scale=True, False', [True, False]),
    ("optimizer.name='adam',sgd", ['adam', 'sgd']),
    ('anchors.aspect_ratios=((2,), (2, 3), (2, 3), (2,)),((2,),) ', [
        ((2,), (2, 3), (2, 3), (2,)), ((2,),)]),
])
def test_vary_values_are_python_literals(smoke_base, text, value):
  assert [o for _, o in sweep_variants.parse_vary(text, smoke_base).variants] == [
      {text.split('=')[0]: v} for v in value]


@pytest.mark.parametrize('text, message', [
    ('anchors.min_size=(1, 2),(3, 4)', r'--vary: anchors.min_size: no such config key; did you '
                                       r'mean anchors.min_sizes\?'),
    ('anchors.s_min', r'--vary=anchors.s_min: expected --vary=<config key>=<value>,<value>'),
    ('anchors.s_min=', r'expected --vary=<config key>=<value>'),
    ('anchors.s_min=0.1,,0.2', r'an empty value'),
    ('anchors.s_min=0.1,0.1', r'the value 0.1 is given twice'),
])
def test_bad_vary_is_one_line(smoke_base, text, message):
  with pytest.raises(errors.UserError, match=message):
    sweep_variants.parse_vary(text, smoke_base)


def test_a_vary_value_the_key_refuses_is_one_line(fake, smoke_base, tmp_path):
  vary = sweep_variants.parse_vary('anchors.extra_scale=True,maybe', smoke_base)
  with pytest.raises(errors.UserError, match=r"Sweep variant 'extra_scale_maybe' sets "
                                             r"'anchors.extra_scale' to 'maybe'"):
    _run(smoke_base, vary, tmp_path / 'w')
  assert not (tmp_path / 'w').exists()


def _sweep_file(tmp_path, text, name='my_sweep.py'):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_a_sweep_file_resumes_and_refuses_a_changed_variant(fake, smoke_base, tmp_path):
  path = _sweep_file(tmp_path, 'VARIANTS = (\n'
                     "    ('config', {}),\n"
                     "    ('no_extra', {'anchors.extra_scale': False}),\n"
                     ')\n')
  mine = sweep_variants.load_sweep_file(path)
  assert mine == sweep_variants.Sweep('my_sweep', (('config', {}),
                                          ('no_extra', {'anchors.extra_scale': False})))
  assert sweep_variants.resolve_sweep(path, None, smoke_base) == mine
  as_dict = _sweep_file(tmp_path, "VARIANTS = {'config': {}, "
                        "'no_extra': {'anchors.extra_scale': False}}", 'as_dict.py')
  assert sweep_variants.load_sweep_file(as_dict).variants == mine.variants
  rows = _run(smoke_base, mine, tmp_path / 'w', seeds=3)
  assert [r['variant'] for r in rows] == ['config', 'no_extra'] and len(fake.trained) == 6
  fake.trained.clear()
  assert _run(smoke_base, mine, tmp_path / 'w', seeds=3) is not None and not fake.trained
  before = _snapshot(tmp_path / 'w')
  _sweep_file(tmp_path, "VARIANTS = (('config', {}), ('no_extra', {'anchors.s_min': 0.1}))")
  with pytest.raises(errors.UserError, match=r"ran variant 'no_extra' with overrides "
                     r"\{'anchors.extra_scale': False\}, but the sweep now says "
                     r"\{'anchors.s_min': 0.1\}; give the changed variant a new name"):
    _run(smoke_base, sweep_variants.load_sweep_file(path), tmp_path / 'w', seeds=3)
  assert _snapshot(tmp_path / 'w') == before and not fake.trained


@pytest.mark.parametrize('text, message', [
    ('VARIANTS = (', r'my_sweep.py: the sweep file does not load: SyntaxError: '),
    ("raise RuntimeError('boom')", r'my_sweep.py: the sweep file does not load: RuntimeError: '
                                   r'boom'),
    ('VARIANTS = ()', r'my_sweep.py defines no variants: expected VARIANTS = '),
    ('SWEEP = ()', r'my_sweep.py defines no variants'),
    ("VARIANTS = (('a', {}), ('a', {}))", r"variant 'a' is defined twice"),
    ("VARIANTS = (('a/b', {}),)", r"variant name 'a/b' is not a plain folder name"),
    ("VARIANTS = (('a', 3),)", r"variant 'a' overrides must be a dict"),
    ("VARIANTS = ('abc',)", r'variants must be \(name, \{dotted.key: value\}\) pairs'),
    ("VARIANTS = (('a', {'num_train_steps': 5}),)", r"variant 'a' sets num_train_steps"),
])
def test_a_bad_sweep_file_is_one_line(tmp_path, text, message):
  path = _sweep_file(tmp_path, text)
  with pytest.raises(errors.UserError, match=message) as raised:
    sweep_variants.load_sweep_file(path)
  assert '\n' not in errors.one_line(raised.value)


def test_sweep_or_vary_selects_the_sweep(smoke_base, tmp_path):
  assert sweep_variants.resolve_sweep('smoke', None, smoke_base).variants == sweeps.SMOKE
  with pytest.raises(errors.UserError, match=r'--sweep=.*nope.py: no such file'):
    sweep_variants.resolve_sweep(str(tmp_path / 'nope.py'), None, smoke_base)
  with pytest.raises(errors.UserError, match='give one of --sweep'):
    sweep_variants.resolve_sweep('smoke', 'anchors.s_min=0.1', smoke_base)
  with pytest.raises(errors.UserError, match='give one of --sweep'):
    sweep_variants.resolve_sweep(None, None, smoke_base)


@pytest.mark.slow
def test_command_line_bad_input_is_one_line_and_creates_nothing(tmp_path):
  """--vary with an unknown key, --collect on a mistyped folder, --seeds=0."""
  for flags_, message in [
      (['--vary=anchors.min_size=(1, 2),(3, 4)'], '--vary: anchors.min_size: no such config key'),
      (['--sweep=smoke', '--collect'], '--collect: '),
      (['--sweep=smoke', '--seeds=0'], '--seeds=0; expected 1 or more.'),
  ]:
    result = subprocess.run(
        [sys.executable, '-m', 'experiments.sweep', '--config=configs/smoke.py',
         f'--workdir={tmp_path / "w"}', *flags_],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f'experiments.sweep: error: {message}'), lines
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'w').exists()
