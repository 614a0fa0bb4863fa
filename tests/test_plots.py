"""Learning curves from eval/step_<N>.json files (hand-made here) and their PNG."""

import json
import os

from PIL import Image

from ssd_jax.evaluation import plots


def write_steps(folder, docs):
  os.makedirs(folder, exist_ok=True)
  for name, text in docs.items():
    with open(os.path.join(folder, name), 'w') as f:
      f.write(text if isinstance(text, str) else json.dumps(text))


def test_read_curve_sorts_by_step_and_leaves_out_what_it_cannot_use(tmp_path, monkeypatch):
  warnings = []
  monkeypatch.setattr(plots.logging, 'warning', lambda *args: warnings.append(args))
  write_steps(str(tmp_path), {
      'step_10.json': {'step': 10, 'metrics': {'mAP': 0.3}, 'elapsed_s': 20.5},
      'step_2.json': {'step': 2, 'metrics': {'mAP': 0.1, 'AP/a': 0.2}, 'elapsed_s': 5},
      'step_12.json': {'step': 12, 'metrics': {'mAP': 0.4}},  # before elapsed_s existed
      'step_5.json': '{"step": 5, "metr',  # cut off
      'step_6.json': '[1, 2]',  # not an evaluation file
      'step_7.json': {'step': 7, 'metrics': {'AP/a': 0.5}},  # no mAP
      'step_8.json': '{"step": 8, "metrics": {"mAP": NaN}}',
      'notes.json': {'metrics': {'mAP': 1.0}},  # not a step file
  })
  assert plots.read_curve(str(tmp_path)) == [(2, 5.0, 0.1), (10, 20.5, 0.3), (12, None, 0.4)]
  assert plots.read_curve(str(tmp_path), 'AP/a') == [(2, 5.0, 0.2), (7, None, 0.5)]
  named = ' '.join(str(a) for args in warnings for a in args)
  assert 'step_5.json' in named and 'step_6.json' in named
  assert 'step_7.json' not in named and 'step_8.json' not in named


def test_save_learning_curve_writes_a_png(tmp_path):
  eval_dir = str(tmp_path / 'eval')
  write_steps(eval_dir, {'step_4.json': {'metrics': {'mAP': 0.2}, 'elapsed_s': 30.0},
                         'step_8.json': {'metrics': {'mAP': 0.35}, 'elapsed_s': 61.0}})
  path = str(tmp_path / 'learning_curve.png')
  assert plots.save_learning_curve(eval_dir, path)
  with Image.open(path) as image:
    assert image.format == 'PNG'
    two_panels = image.size
  # Without elapsed_s: the wall-time panel is left out (a narrower figure).
  write_steps(eval_dir, {'step_4.json': {'metrics': {'mAP': 0.2}},
                         'step_8.json': {'metrics': {'mAP': 0.35}}})
  assert plots.save_learning_curve(eval_dir, path)
  with Image.open(path) as image:
    assert image.format == 'PNG'
    assert image.size[0] < two_panels[0] and image.size[1] == two_panels[1]


def test_save_learning_curve_of_nothing_writes_nothing(tmp_path):
  path = str(tmp_path / 'learning_curve.png')
  os.makedirs(tmp_path / 'eval')
  assert plots.save_learning_curve(str(tmp_path / 'eval'), path) is False
  assert plots.save_learning_curve(str(tmp_path / 'missing'), path) is False
  write_steps(str(tmp_path / 'eval'), {'step_1.json': {'metrics': {'AP/a': 0.5}}})
  assert plots.save_learning_curve(str(tmp_path / 'eval'), path) is False
  assert not os.path.exists(path)


class _Writer:
  def write_scalars(self, step, scalars):
    del step, scalars


def test_elapsed_s_is_set_by_training_and_kept_by_eval_mode(tmp_path):
  from ssd_jax import run_files  # pylint: disable=g-import-not-at-top  # imports TensorFlow
  from ssd_jax.evaluation import result as result_lib  # pylint: disable=g-import-not-at-top
  def result(mAP):
    return result_lib.EvalResult({'mAP': mAP, 'AP/a': mAP}, ('a',), {'a': 1}, {'a': 1})
  workdir = str(tmp_path)
  run_files.write_eval(workdir, 8, result(0.1), _Writer(), 'voc07', elapsed_s=30.04)
  assert plots.read_curve(os.path.join(workdir, 'eval')) == [(8, 30.0, 0.1)]
  run_files.write_eval(workdir, 8, result(0.2), _Writer(), 'voc07')  # eval mode: no time
  assert plots.read_curve(os.path.join(workdir, 'eval')) == [(8, 30.0, 0.2)]
  run_files.write_eval(workdir, 8, result(0.3), _Writer(), 'voc07', elapsed_s=45.0)  # resumed run
  assert plots.read_curve(os.path.join(workdir, 'eval')) == [(8, 45.0, 0.3)]
