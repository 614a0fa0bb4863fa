"""The training program end to end on the smoke config: train, resume, eval, restore errors."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

from configs import smoke
from experiments import error_analysis
from ssd_jax import anchors
from ssd_jax import checkpoints
from ssd_jax import errors
from ssd_jax import models
from ssd_jax import pretrained
from ssd_jax import run_files
from ssd_jax import train
from ssd_jax.data import input_pipeline
from ssd_jax.evaluation import plots
from tests import model_setup

pytestmark = pytest.mark.slow  # Trains (train_and_evaluate), evaluates runs, or starts processes.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def signature(config):
  """The checkpoint signature a run of `config` writes and checks."""
  return checkpoints.model_signature(config, model_setup.default_boxes(config))


def new_state(config):
  """A freshly initialized train state for `config` (one device)."""
  model = model_setup.create_model(config)
  return train.create_train_state(config, model, jax.random.PRNGKey(0))


def smoke_config(data_dir, **overrides):
  config = smoke.get_config()
  config.input.data_dir = data_dir
  for key, value in overrides.items():
    group, name = key.split('.') if '.' in key else (None, key)
    (config[group] if group else config)[name] = value
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp('run'))
  metrics = train.train_and_evaluate(smoke_config(data_dir), workdir)
  return workdir, metrics


def test_train_writes_eval_json_and_checkpoints(trained):
  workdir, metrics = trained
  with open(os.path.join(workdir, 'eval', 'step_8.json')) as f:
    saved = json.load(f)
  assert saved['step'] == 8
  assert saved['metrics']['mAP'] == pytest.approx(metrics['mAP'])
  assert set(saved['metrics']) >= {f'AP/{n}' for n in smoke.get_config().input.class_names}
  assert os.path.exists(os.path.join(workdir, 'eval', 'step_4.json'))
  steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, 'checkpoints')) if d.isdigit())
  assert steps[-1] == 8 and len(steps) <= 3  # keep_checkpoints=2 plus the best by mAP
  assert os.path.exists(os.path.join(workdir, 'config.json'))


def test_train_writes_the_learning_curve_and_wall_times(trained):
  workdir, _ = trained
  elapsed = []
  for step in (4, 8):
    with open(os.path.join(workdir, 'eval', f'step_{step}.json')) as f:
      elapsed.append(json.load(f)['elapsed_s'])
  assert 0 < elapsed[0] < elapsed[1]
  with Image.open(os.path.join(workdir, 'learning_curve.png')) as image:
    assert image.format == 'PNG'


def test_eval_mode_reproduces_the_final_metric(trained, data_dir):
  workdir, metrics = trained
  again = train.evaluate_checkpoint(smoke_config(data_dir), workdir)
  assert again['mAP'] == pytest.approx(metrics['mAP'], abs=1e-9)
  for key, value in metrics.items():
    if np.isfinite(value):
      assert again[key] == pytest.approx(value, abs=1e-9), key


def test_error_analysis_scores_what_eval_scores(trained, tmp_path, capsys):
  workdir, metrics = trained
  output = str(tmp_path / 'analysis.json')
  result = error_analysis.run(workdir, output=output)
  assert result['mAP@0.5'] == pytest.approx(metrics['mAP'], abs=1e-9)
  assert result['mAP@0.3'] >= result['mAP@0.5'] >= result['mAP@0.7']
  with open(output) as f:
    assert json.load(f) == result
  assert 'class-agnostic AP at IoU 0.5' in capsys.readouterr().out


def test_resume_continues_from_the_saved_step(trained, data_dir, tmp_path, capsys):
  workdir, _ = trained
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(workdir, resumed)
  # The eval mAP is stored with each evaluated step; make step 4 the best, so that the resumed
  # run (which knows the mAPs only from disk) must keep it past keep_checkpoints=2.
  metrics_file = os.path.join(resumed, 'checkpoints', '4', 'metrics', 'metrics')
  with open(metrics_file) as f:
    assert 'mAP' in json.load(f)
  with open(metrics_file, 'w') as f:
    json.dump({'mAP': 1.0}, f)
  config = smoke_config(data_dir, num_train_steps=10, **{'eval.every_steps': 10})
  train.train_and_evaluate(config, resumed)
  out = capsys.readouterr().out
  assert 'Resuming from the checkpoint of step 8' in out
  assert 'step 2/10' not in out and 'step 10/10' in out  # no step before 8 was run again
  manager = checkpoints.create_manager(resumed, config)
  assert sorted(manager.all_steps()) == [4, 8, 10]  # the last two and the best
  state = new_state(config)
  state, step = checkpoints.restore(manager, state, signature(config))
  assert step == 10 and int(state.step) == 10  # optimizer state carried the step count
  # Wall time goes on from the earlier run's (that of its evaluation at the resumed step 8).
  times = {s: t for s, t, _ in plots.read_curve(os.path.join(resumed, 'eval'))}
  assert times[4] < times[8] < times[10]
  # The config changed on resume: config.json is the new one, the old is kept by its step.
  with open(os.path.join(resumed, 'config.json')) as f:
    assert json.load(f)['num_train_steps'] == 10
  with open(os.path.join(resumed, 'config.8.json')) as f:
    assert json.load(f)['num_train_steps'] == 8


def test_rejected_restore_leaves_config_json_alone(trained, data_dir, tmp_path):
  workdir, _ = trained
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  with open(os.path.join(copy, 'config.json')) as f:
    before = f.read()
  with pytest.raises(ValueError, match='model.width'):
    train.train_and_evaluate(smoke_config(data_dir, **{'model.width': 0.25}), copy)
  with open(os.path.join(copy, 'config.json')) as f:
    assert f.read() == before
  assert not [n for n in os.listdir(copy) if n.startswith('config.') and n != 'config.json']
  assert not os.path.exists(os.path.join(copy, 'lock'))  # released on the error


def test_restore_into_a_different_model_names_the_mismatch(trained, data_dir):
  workdir, _ = trained
  config = smoke_config(data_dir, **{'model.width': 0.25})
  with pytest.raises(ValueError, match=r'model.width: checkpoint has 0.125, config has 0.25'):
    train.evaluate_checkpoint(config, workdir)


def test_restore_into_another_normalization_names_it(trained, data_dir):
  workdir, _ = trained
  config = smoke_config(data_dir, **{'model.norm': 'group'})
  with pytest.raises(ValueError, match=r"model.norm: checkpoint has None, config has 'group'"):
    train.evaluate_checkpoint(config, workdir)


def test_eval_of_a_missing_step_is_a_clear_error(trained, data_dir):
  workdir, _ = trained
  with pytest.raises(ValueError, match='No checkpoint for step 3'):
    train.evaluate_checkpoint(smoke_config(data_dir, eval_step=3), workdir)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
  workdir = str(tmp_path / 'nan')
  config = smoke_config(data_dir, num_train_steps=12, checkpoint_every_steps=2,
                        log_every_steps=2, **{'optimizer.name': 'sgd',
                                              'optimizer.learning_rate': 1e12,
                                              'optimizer.warmup_steps': 0,
                                              'eval.every_steps': 100})
  with pytest.raises(FloatingPointError, match=r'Loss is (nan|inf) at step \d+'):
    train.train_and_evaluate(config, workdir)
  manager = checkpoints.create_manager(workdir, config)
  for step in manager.all_steps():  # every checkpoint left behind is finite
    state = new_state(config)
    state, _ = checkpoints.restore(manager, state, signature(config), step)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


def abstract_params(config):
  """Parameter shapes of a config's model, without compiling anything."""
  return jax.eval_shape(lambda: new_state(config)).params


def test_init_from_loads_matching_arrays(trained, data_dir):
  workdir, _ = trained
  params = checkpoints.load_params(os.path.join(workdir, 'checkpoints'))
  fresh = abstract_params(smoke_config(data_dir))
  merged, loaded, reinitialized = pretrained.select(fresh, params, 'all')
  assert len(loaded) == len(jax.tree.leaves(fresh)) and not reinitialized
  np.testing.assert_array_equal(merged['vgg16']['conv1_1']['conv']['kernel'],
                                params['vgg16']['conv1_1']['conv']['kernel'])
  wide = abstract_params(smoke_config(data_dir, **{'model.width': 0.25}))
  with pytest.raises(ValueError, match=r'kernel \(3, 3, \d+, \d+\) in the checkpoint'):
    pretrained.select(wide, params, 'all')


def test_two_fake_devices_give_the_same_losses_as_one():
  """Same global batch on a 1-device and a 2-device mesh (in a fresh process with 2 CPUs)."""
  script = r'''
import jax, numpy as np
from configs import smoke
from ssd_jax import train
from ssd_jax.data.synthetic import random_batch
from tests import model_setup
for norm in (None, 'batch'):  # BatchNorm statistics must be global too (synchronized BN)
  config = smoke.get_config()
  config.model.norm = norm
  losses, stats = {}, {}
  for n in (1, 2):
    mesh = train.make_mesh(jax.devices()[:n])
    model = model_setup.create_model(config)
    state = train.create_train_state(config, model, jax.random.PRNGKey(0), mesh)
    step_fn, _ = train.compile_steps(config, mesh, state.apply_fn,
                                     model_setup.default_boxes(config))
    rng = np.random.default_rng(0)
    out = []
    for _ in range(3):
      batch = random_batch(rng, 4, 96, 8, len(config.input.class_names))
      state, m = step_fn(state, train.global_batch(batch, mesh, train.STEP_KEYS))
      out.append([float(m['loss']), float(m['num_pos'])])
    losses[n], stats[n] = out, jax.device_get(state.batch_stats)
  print(jax.device_count(), norm, losses[1], losses[2])
  np.testing.assert_allclose(losses[1], losses[2], rtol=2e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5),
               stats[1], stats[2])
  assert bool(jax.tree.leaves(stats[1])) == (norm == 'batch')
'''
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2',
             JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.startswith('2 ')


def test_two_processes_train_together(tmp_path):
  """Two JAX processes on localhost (gloo CPU collectives) run the smoke config together.

  A fresh data dir: both processes find the data missing, and process 0 must prepare it first.
  """
  data_dir = str(tmp_path / 'tfds')
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  workdir = str(tmp_path / 'multi')
  procs = []
  for pid in range(2):
    cmd = [sys.executable, '-m', 'ssd_jax.main', '--config=configs/smoke.py',
           f'--workdir={workdir}', f'--coordinator_address=127.0.0.1:{port}',
           '--num_processes=2', f'--process_id={pid}', f'--config.input.data_dir={data_dir}',
           '--config.num_train_steps=4', '--config.eval.every_steps=4']
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=400)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  assert 'JAX: 2 process(es), 2 device(s)' in outputs[0]
  assert 'JAX:' not in outputs[1]  # one log: process 1 prints nothing of its own
  for out in outputs:  # nothing a library prints by habit
    assert 'oneDNN' not in out and 'Using custom data configuration' not in out
  assert 'Evaluation at step 4' in outputs[0] and 'Evaluation at step' not in outputs[1]
  assert 'step 4/4' in outputs[0] and 'step 4/4' not in outputs[1]
  with open(os.path.join(workdir, 'eval', 'step_4.json')) as f:
    assert 'mAP' in json.load(f)['metrics']


def test_manager_keeps_the_last_n_and_the_best(tmp_path):
  config = smoke.get_config()
  config.keep_checkpoints = 2
  manager = checkpoints.create_manager(str(tmp_path), config)
  state = {'w': np.zeros(3, np.float32)}
  for step, mAP in [(1, 0.1), (2, 0.9), (3, None), (4, 0.3), (5, 0.2)]:
    checkpoints.save(manager, step, state, signature(config),
                     metrics=None if mAP is None else {'mAP': mAP})
  manager.wait_until_finished()
  assert sorted(manager.all_steps()) == [2, 4, 5]


def truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def largest_array_file(step_dir):
  files = [os.path.join(root, n) for root, _, names in os.walk(os.path.join(step_dir, 'state'))
           if os.path.basename(root) == 'd' for n in names]
  return max(files, key=os.path.getsize)


def test_eval_falls_back_from_a_truncated_array_file(trained, data_dir, tmp_path, capsys):
  workdir, _ = trained
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  damaged = largest_array_file(os.path.join(copy, 'checkpoints', '8'))
  truncate(damaged)
  train.evaluate_checkpoint(smoke_config(data_dir), copy)
  out = capsys.readouterr().out
  moved = os.path.join(copy, 'checkpoints_corrupt', '8')
  item = os.path.join(copy, 'checkpoints', '8', 'state')
  assert f'Checkpoint step 8 is unreadable: {item}:' in out
  assert f'Moved it to {moved}; using step 4.' in out
  assert 'Evaluation at step 4' in out and 'Evaluation at step 8' not in out
  assert os.path.isfile(damaged.replace(os.path.join('checkpoints', '8'),
                                        os.path.join('checkpoints_corrupt', '8')))
  assert sorted(os.listdir(os.path.join(copy, 'checkpoints'))) == ['4']


def test_resume_falls_back_from_a_truncated_metadata_file(trained, data_dir, tmp_path, capsys):
  workdir, _ = trained
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  damaged = os.path.join(copy, 'checkpoints', '8', 'state', '_METADATA')
  truncate(damaged)
  config = smoke_config(data_dir)
  manager = checkpoints.create_manager(copy, config)
  state = new_state(config)
  with pytest.raises(errors.UserError, match=f'Checkpoint step 8 is unreadable: {damaged}:'):
    checkpoints.restore(manager, state, signature(config), 8)  # a requested step: no silent fallback
  assert os.path.isdir(os.path.join(copy, 'checkpoints', '8'))
  state, step = checkpoints.restore(manager, state, signature(config))  # what a resume does
  assert step == 4 and int(state.step) == 4
  assert os.path.isfile(os.path.join(copy, 'checkpoints_corrupt', '8', 'state', '_METADATA'))
  assert f'Checkpoint step 8 is unreadable: {damaged}:' in capsys.readouterr().out


def test_eval_with_another_metric_keeps_the_first(trained, data_dir, tmp_path):
  workdir, metrics = trained
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  voc = train.evaluate_checkpoint(smoke_config(data_dir, **{'eval.metric': 'voc'}), copy)
  with open(os.path.join(copy, 'eval', 'step_8.json')) as f:
    saved = json.load(f)
  assert saved['metric'] == 'voc07'  # the training run's metric stays at the top level
  assert saved['metrics']['mAP'] == pytest.approx(metrics['mAP'])
  assert set(saved['by_metric']) == {'voc07', 'voc'}
  assert saved['by_metric']['voc07']['metrics']['mAP'] == pytest.approx(metrics['mAP'])
  assert saved['by_metric']['voc']['metrics']['mAP'] == pytest.approx(voc['mAP'])
  assert not [n for n in os.listdir(os.path.join(copy, 'eval')) if 'tmp' in n]


def test_eval_of_a_missing_or_empty_workdir_creates_nothing(data_dir, tmp_path):
  missing = str(tmp_path / 'mistyped')
  with pytest.raises(errors.UserError, match=f'--workdir={missing} does not exist'):
    train.evaluate_checkpoint(smoke_config(data_dir), missing)
  assert not os.path.exists(missing)
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(errors.UserError, match='No checkpoint to evaluate in'):
    train.evaluate_checkpoint(smoke_config(data_dir), str(empty))
  assert not os.listdir(empty)


@pytest.mark.parametrize('run', ['train_and_evaluate', 'evaluate_checkpoint'])
def test_a_workdir_that_is_a_file_is_one_line(data_dir, tmp_path, run):
  path = tmp_path / 'file'
  path.write_text('x')
  with pytest.raises(errors.UserError, match=f'--workdir={path} is a file, not a folder'):
    getattr(train, run)(smoke_config(data_dir), str(path))


def test_a_second_run_on_a_workdir_is_refused(data_dir, tmp_path):
  workdir = str(tmp_path / 'busy')
  os.makedirs(workdir)
  holder = {'host': socket.gethostname(), 'pid': os.getppid(), 'started': '2026-01-02T03:04:05'}
  with open(os.path.join(workdir, 'lock'), 'w') as f:
    json.dump(holder, f)
  with pytest.raises(errors.UserError, match=(
      rf'is in use by another run \(host {socket.gethostname()}, PID {os.getppid()}, '
      r'started 2026-01-02T03:04:05')):
    train.train_and_evaluate(smoke_config(data_dir), workdir)
  assert os.listdir(workdir) == ['lock']  # nothing written by the refused run


def test_a_full_disk_while_writing_json_names_the_file(data_dir, tmp_path, monkeypatch):
  config = smoke_config(data_dir)
  run_files.write_config(str(tmp_path), config, None)
  path = os.path.join(tmp_path, 'config.json')
  with open(path) as f:
    before = f.read()

  def full(src, dst):
    raise OSError(errno.ENOSPC, 'No space left on device', src)

  monkeypatch.setattr(os, 'replace', full)
  config.num_train_steps = 99
  with pytest.raises(errors.UserError, match=(
      rf'cannot write {tmp_path}/config.8.json: disk full \(\d+\.\d MiB free')):
    run_files.write_config(str(tmp_path), config, 8)
  with open(path) as f:
    assert f.read() == before
  assert os.listdir(tmp_path) == ['config.json']  # no temporary file left


def test_a_full_disk_while_saving_a_checkpoint_names_the_step(tmp_path, monkeypatch):
  config = smoke.get_config()
  manager = checkpoints.create_manager(str(tmp_path), config)
  real_save = type(manager).save

  def full(self, step, *args, **kwargs):
    os.makedirs(os.path.join(self.directory, f'{step}.orbax-checkpoint-tmp-1234', 'state'))
    raise OSError(errno.ENOSPC, 'No space left on device')

  checkpoints.save(manager, 1, {'w': np.zeros(3, np.float32)}, signature(config))
  monkeypatch.setattr(type(manager), 'save', full)
  with pytest.raises(errors.UserError, match=(
      rf'cannot write {tmp_path}/checkpoints/2: disk full \(\d+\.\d MiB')):
    checkpoints.save(manager, 2, {'w': np.zeros(3, np.float32)}, signature(config))
  monkeypatch.setattr(type(manager), 'save', real_save)
  manager.wait_until_finished()
  assert sorted(os.listdir(os.path.join(tmp_path, 'checkpoints'))) == ['1']  # nothing partial


def test_eval_step_over_scales_equals_its_parts():
  """Multi-scale eval_step against its pieces: the maps split over two scales of the same size
  give the single-scale detections exactly; another size gives what one pass on the resized
  batch with that size's default boxes gives."""
  config = smoke.get_config()
  priors = model_setup.default_boxes(config)
  model = model_setup.create_model(config)
  images = jax.random.normal(jax.random.PRNGKey(1), (2, 96, 96, 3))
  variables = model.init(jax.random.PRNGKey(0), images)

  def run(images, boxes, scales=None):
    out = train.eval_step(variables, {'image': images}, boxes, model.apply, config, scales)
    return {k: np.asarray(v) for k, v in out.items()}

  plain = run(images, priors.boxes)
  assert plain['valid'].any()
  config.eval.scales = ((96, 0, 2), (96, 2, 4))
  split = anchors.eval_scales(config, models.map_sizes_at(config.model))
  for key, value in run(images, split.boxes, split.scales).items():
    np.testing.assert_array_equal(value, plain[key], err_msg=key)
  config.eval.scales = ((64, 0, 4),)
  smaller = anchors.eval_scales(config, models.map_sizes_at(config.model))
  resized = jax.image.resize(images, (2, 64, 64, 3), 'linear')
  want = run(resized, anchors.default_boxes(config, models.map_sizes_at(config.model)(64), 64))
  for key, value in run(images, smaller.boxes, smaller.scales).items():
    np.testing.assert_array_equal(value, want[key], err_msg=key)


def test_eval_over_scales_end_to_end(trained, data_dir, tmp_path):
  workdir, metrics = trained
  copy = str(tmp_path / 'run')
  shutil.copytree(workdir, copy)
  split = smoke_config(data_dir, **{'eval.scales': ((96, 0, 2), (96, 2, 4))})
  again = train.evaluate_checkpoint(split, copy)
  for key, value in metrics.items():
    if np.isfinite(value):
      assert again[key] == pytest.approx(value, abs=1e-9), key
  larger = smoke_config(data_dir, **{'eval.scales': ((128, 0, 2), (96, 0, 4))})
  dataset = input_pipeline.create_eval_dataset(larger)
  assert dataset.element_spec['image'].shape[1:] == (128, 128, 3)
  assert 0 <= train.evaluate_checkpoint(larger, copy)['mAP'] <= 1


def test_a_config_error_writes_nothing_into_the_workdir(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  bad = smoke_config(data_dir, **{'eval.scales': ((96, 0, 9),)})
  with pytest.raises(errors.UserError, match='not among the model'):
    train.train_and_evaluate(bad, workdir)
  assert not os.path.exists(workdir)  # The run created it, and removes it again.
  os.mkdir(workdir)  # A folder that was there before stays, empty.
  with pytest.raises(errors.UserError, match='not among the model'):
    train.train_and_evaluate(bad, workdir)
  assert os.listdir(workdir) == []


@pytest.mark.slow
def test_evaluations_on_other_data_keep_the_runs_own(trained, data_dir, tmp_path):
  """One checkpoint scored on two other data sets: three files, each naming what it scored."""
  workdir, metrics = trained
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  own_path = os.path.join(copy, 'eval', 'step_8.json')
  with open(own_path) as f:
    own_text = f.read()
  own = json.loads(own_text)
  seeded = smoke_config(data_dir, **{'input.shapes_seed': 4242})
  train_split = smoke_config(data_dir, **{'input.eval_split': 'train'})
  other = {'seed': train.evaluate_checkpoint(seeded, copy),
           'train': train.evaluate_checkpoint(train_split, copy)}
  with open(own_path) as f:
    assert f.read() == own_text  # The run's own result is untouched.
  folders = sorted(n for n in os.listdir(os.path.join(copy, 'eval'))
                   if os.path.isdir(os.path.join(copy, 'eval', n)))
  docs = {}
  for folder in folders:
    assert os.listdir(os.path.join(copy, 'eval', folder)) == ['step_8.json']
    with open(os.path.join(copy, 'eval', folder, 'step_8.json')) as f:
      doc = json.load(f)
    assert folder == (f"shapes-{doc['data']['split']}-{doc['data']['fingerprint'][:8]}")
    docs['seed' if doc['data']['config']['input.shapes_seed'] == 4242 else 'train'] = doc
  assert len(folders) == 2 and set(docs) == {'seed', 'train'}
  for name, config in (('seed', seeded), ('train', train_split)):
    info = input_pipeline.get_dataset_info(config)
    assert docs[name]['data']['num_images'] == info.num_eval_examples
    assert docs[name]['metrics']['mAP'] == pytest.approx(other[name]['mAP'])
  assert own['data']['num_images'] == smoke.get_config().input.shapes_num_validation
  assert (docs['seed']['data']['split'], docs['train']['data']['split']) == ('validation', 'train')
  assert docs['train']['data']['num_images'] == smoke.get_config().input.shapes_num_train
  assert own['metrics']['mAP'] == pytest.approx(metrics['mAP'])
  assert len({own['data']['fingerprint'], docs['seed']['data']['fingerprint'],
              docs['train']['data']['fingerprint']}) == 3
  # The run's own data again: its file, same ground truth; the curve reads only those files.
  train.evaluate_checkpoint(smoke_config(data_dir), copy)
  with open(own_path) as f:
    assert json.load(f)['data'] == own['data']
  assert [s for s, _, _ in plots.read_curve(os.path.join(copy, 'eval'))] == [4, 8]


def test_a_nan_loss_at_step_1_blames_the_weights_not_the_learning_rate():
  with pytest.raises(FloatingPointError) as raised:
    train._check_finite([(1, float('nan'))], lambda: None, '/w/vgg16')
  message = str(raised.value)
  assert message == ('Loss is nan at step 1. Stopping; no checkpoint was saved. The loss of '
                     'step 1 is that of the initial weights, before any update (not the '
                     'learning rate): check the weights of config.init_from=/w/vgg16 '
                     '(non-finite values?) or the input data.')


def test_a_nan_loss_later_names_the_checkpoint_kept():
  train._check_finite([(7, 1.5), (8, 2.0)], lambda: 1 / 0)  # Finite: `kept` is not called.
  with pytest.raises(FloatingPointError) as raised:
    train._check_finite([(7, 1.5), (8, float('inf'))], lambda: 6)
  assert str(raised.value) == (
      'Loss is inf at step 8. Stopping; the checkpoint of step 6 is kept (rerunning resumes '
      'from it). Try a lower optimizer.learning_rate, a longer warmup or '
      'optimizer.grad_clip_norm.')
  with pytest.raises(FloatingPointError, match='Loss is nan at step 3. Stopping; no checkpoint '
                     'was saved. Try a lower optimizer.learning_rate'):
    train._check_finite([(3, float('nan'))], lambda: None)
