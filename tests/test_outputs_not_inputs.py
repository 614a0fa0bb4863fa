"""No command writes over one of its own inputs (real paths: a symlink to an input counts).

Each command refuses in one line before any work, and the input is left byte for byte.
"""

import os
import subprocess
import sys

from PIL import Image
import pytest

from ssd_jax import convert
from ssd_jax import detect
from ssd_jax import errors
from ssd_jax import evaluate
from ssd_jax import file_io
from tests import command_line


def _bytes(path):
  with open(path, 'rb') as f:
    return f.read()


@pytest.fixture
def photo(tmp_path):
  path = tmp_path / 'photo.jpg'
  Image.new('RGB', (40, 30), (200, 10, 10)).save(path)
  os.symlink(path, tmp_path / 'link.jpg')
  return str(path)


def test_helper_compares_real_paths(tmp_path):
  data = tmp_path / 'data'
  (data / 'sub').mkdir(parents=True)
  (data / 'a.json').write_text('{}')
  os.symlink(data / 'a.json', tmp_path / 'alias.json')
  os.symlink(data, tmp_path / 'data_link')
  refused = [
      ([('--output', str(tmp_path / 'alias.json'), None)], 'is the input --in='),
      ([('--output', str(tmp_path / 'data_link' / 'sub' / 'new.json'), None)],
       'lies inside the input folder --dir='),
      ([('--plots', str(tmp_path), ('*',))], 'would write over the input --in='),
      ([('--plots', str(data), ('*.txt',))], 'is the input --dir='),
  ]
  inputs = [('--in', str(data / 'a.json')), ('--dir', str(data / 'sub'))]
  inputs_with_folder = [('--in', str(data / 'a.json')), ('--dir', str(data))]
  for outputs, message in refused:
    with pytest.raises(errors.UserError, match=message):
      file_io.check_not_inputs(outputs, inputs_with_folder if 'dir=' in message else inputs)
  # Allowed: another file next to an input, a folder whose written names match no input.
  file_io.check_not_inputs([('--output', str(tmp_path / 'b.json'), None),
                            ('--plots', str(tmp_path), ('pr_*.png',))], inputs)
  file_io.check_not_inputs([('--output', None, None)], inputs)


@pytest.mark.parametrize('name', ['photo.jpg', 'link.jpg'])
def test_detect_refuses_to_write_over_an_image(photo, tmp_path, name):
  before = _bytes(photo)
  output = str(tmp_path / name)
  both = f' (both are {photo})' if name == 'link.jpg' else ''
  # The workdir does not exist: the refusal comes before any work (restoring the model).
  with pytest.raises(errors.UserError) as error:
    detect.detect_files(str(tmp_path / 'no_workdir'), [photo], output)
  assert str(error.value).startswith(f'--output={output} is the input image={photo}{both};')
  with pytest.raises(errors.UserError, match='is the input image='):  # Found in a folder.
    detect.detect_files(str(tmp_path / 'no_workdir'), [str(tmp_path)], output)
  assert _bytes(photo) == before


def _flag(name):
  """The evaluate flag's spelling on this branch (underscores, or the older hyphens)."""
  return name if name in evaluate.FLAGS else name.replace('_', '-')


def _evaluate_error(*args) -> str:
  """The one line `ssd_jax.evaluate` exits with for `args` (run in this process)."""
  evaluate.FLAGS.unparse_flags()
  try:
    argv = evaluate.FLAGS(['evaluate', *args])
    with pytest.raises(SystemExit) as exit_info:
      evaluate.main(argv)
  finally:
    evaluate.FLAGS.unparse_flags()
  line = exit_info.value.code
  assert isinstance(line, str) and line.startswith('ssd_jax.evaluate: error: '), line
  assert '\n' not in line
  return line


@pytest.mark.parametrize('flag, target', [
    ('output', 'ground_truth'), ('output', 'detections'), ('output', 'link_to_detections'),
    ('plots', 'detections'), ('plots', 'link_to_detections')])
def test_evaluate_refuses_to_write_over_its_inputs(tmp_path, target, flag):
  gt = tmp_path / 'gt.json'
  gt.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}')
  dets = tmp_path / 'dets.json'
  dets.write_text('[]')
  os.symlink(dets, tmp_path / 'pr_a.png')
  os.symlink(dets, tmp_path / 'link.json')
  before = {p: _bytes(p) for p in (gt, dets)}
  if flag == 'output':
    path = {'ground_truth': gt, 'detections': dets,
            'link_to_detections': tmp_path / 'link.json'}[target]
    message = f'--output={path} is the input --'
  else:  # --plots writes pr_<class>.png: here pr_a.png, a link to the detections.
    if target == 'detections':
      os.remove(tmp_path / 'pr_a.png')
      os.rename(dets, tmp_path / 'pr_a.png')
      dets = tmp_path / 'pr_a.png'
      before = {p: _bytes(p) for p in (gt, dets)}
    path = tmp_path
    message = f'--plots={path} would write over the input --detections='
  line = _evaluate_error(f'--{_flag("ground_truth")}={gt}', f'--detections={dets}',
                         '--metric=coco', f'--{flag}={path}')
  assert message in line
  assert {p: _bytes(p) for p in (gt, dets)} == before


def test_convert_refuses_to_write_over_its_input(tmp_path):
  state = tmp_path / 'weights.npz'
  state.write_bytes(b'not read')
  os.symlink(state, tmp_path / 'link')
  with pytest.raises(errors.UserError, match='--output=.*link is the input --input='):
    convert.convert('vgg16', str(state), str(tmp_path / 'link'))
  assert _bytes(state) == b'not read'


@pytest.mark.slow
def test_benchmark_and_sweep_refuse_to_write_over_their_config(tmp_path):
  config = tmp_path / 'my_config.py'
  with open(os.path.join(command_line.REPO, 'configs', 'smoke.py')) as f:
    config.write_text(f.read())
  before = _bytes(config)
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.benchmark', f'--config={config}',
       f'--output={config}'], cwd=command_line.REPO, capture_output=True, text=True, timeout=300)
  command_line.assert_one_error_line(result, 'experiments.benchmark',
                                     f'--output={config} is the input --config=')
  result = command_line.run('experiments.sweep', f'--config={config}', '--sweep=smoke',
                            f'--workdir={tmp_path}')
  command_line.assert_one_error_line(result, 'experiments.sweep',
                                     f'--workdir={tmp_path} would write over the input '
                                     '--config=')
  assert _bytes(config) == before and sorted(os.listdir(tmp_path)) == ['my_config.py']
