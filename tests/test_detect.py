"""The detect command on generated JPEG/PNG/greyscale/RGBA files of several sizes, against the
same model's evaluation path (one image at a time) scaled to each image by hand."""

import json
import os
import shutil

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from PIL import ImageDraw
import pytest
import tensorflow as tf

from configs import smoke
from ssd_jax import convert
from ssd_jax import detect
from ssd_jax import errors
from ssd_jax import train
from ssd_jax import workdir as workdir_lib
from ssd_jax.data import augment
from tests import command_line
from tests import model_setup

THRESHOLD = 0.12


def scene(height, width, seed) -> Image.Image:
  """A smooth background with a few filled shapes."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  base = np.stack([200 * x, 150 * y + 50, 120 + 80 * x * y], -1).astype(np.uint8)
  image = Image.fromarray(base)
  draw = ImageDraw.Draw(image)
  for _ in range(3):
    x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
    box = [x0, y0, x0 + rng.integers(8, width // 2), y0 + rng.integers(8, height // 2)]
    colour = tuple(int(c) for c in rng.integers(0, 255, 3))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
  return image


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  config = smoke.get_config()
  model = model_setup.create_model(config)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(1), jnp.zeros((1, 96, 96, 3)))
  rng = np.random.default_rng(1)
  params = {}  # He-initialised kernels, small biases (running the initializers is slow).
  for key, s in traverse_util.flatten_dict(shapes['params'], sep='/').items():
    std = np.sqrt(2 / np.prod(s.shape[:-1])) if len(s.shape) > 1 else 0.1
    params[key] = (rng.standard_normal(s.shape) * std).astype(np.float32)
  params = traverse_util.unflatten_dict(params, sep='/')
  params['vgg16']['conv4_3_norm']['scale'] = np.full(
      params['vgg16']['conv4_3_norm']['scale'].shape, 20.0, np.float32)
  path = str(tmp_path_factory.mktemp('det') / 'run')
  convert.save_workdir(path, config, jax.device_get(params))
  return path, params


@pytest.fixture(scope='module')
def images(tmp_path_factory):
  folder = tmp_path_factory.mktemp('images')
  scene(90, 120, 0).save(folder / 'a.jpg', quality=95)
  scene(70, 70, 4).save(folder / '000000397133.jpg')
  scene(200, 64, 1).save(folder / 'b.png')
  scene(50, 50, 2).convert('L').save(folder / 'c_grey.png')
  rgba = scene(160, 300, 3).convert('RGBA')
  rgba.putalpha(128)
  rgba.save(folder / 'd_rgba.png')
  (folder / 'notes.txt').write_text('not an image')
  return str(folder)


def eval_path_results(params, path):
  """The eval path on one image: eval preprocessing, eval step, boxes scaled by hand."""
  config = smoke.get_config()
  priors = model_setup.default_boxes(config)
  model = model_setup.create_model(config)
  with Image.open(path) as im:
    pixels = np.asarray(im.convert('RGB'))
  image = augment.apply_ops(augment.eval_ops(config, config.model.input_size),
                            {'image': tf.constant(pixels, tf.float32)})['image']
  dets = train.eval_step({'params': params, 'batch_stats': {}}, {'image': image.numpy()[None]},
                         jnp.asarray(priors.boxes), model.apply, config)
  h, w = pixels.shape[:2]
  out = []
  for box, score, label, valid in zip(*(np.asarray(dets[k][0]) for k in
                                        ('boxes', 'scores', 'classes', 'valid'))):
    if valid and score >= THRESHOLD:
      y0, x0, y1, x1 = np.clip(box * [h, w, h, w], 0, [h, w, h, w])  # Pixels, in the image.
      if x1 > x0 and y1 > y0:
        out.append((int(label), float(score), [x0, y0, x1 - x0, y1 - y0]))
  return out


@pytest.mark.slow
def test_detect_matches_the_eval_path_scaled_to_each_image(workdir, images, tmp_path, capsys):
  path, params = workdir
  output, draw = str(tmp_path / 'dets.json'), str(tmp_path / 'drawn')
  detect.detect_files(path, [images], output, draw=draw, score_threshold=THRESHOLD,
                      batch_size=3)
  out = capsys.readouterr().out
  assert '3 images done (3/6 files read)' in out and '5 images done (6/6 files read)' in out
  assert 'images/s' in out
  assert f'Skipped 1 files that are not readable images: {images}/notes.txt.' in out
  with open(output) as f:
    results = json.load(f)
  names = smoke.get_config().input.class_names
  assert {r['image'] for r in results} <= {'000000397133', 'a', 'b', 'c_grey', 'd_rgba'}
  assert {r['image_id'] for r in results if r['image'] == '000000397133'} == {397133}
  for stem in ('a', 'b', 'c_grey', 'd_rgba'):
    file_name = [n for n in os.listdir(images) if n.startswith(stem)][0]
    expected = eval_path_results(params, os.path.join(images, file_name))
    got = [r for r in results if r['image'] == stem]
    assert expected, stem  # The threshold leaves something to compare.
    assert len(got) == len(expected), stem
    for label, score, bbox in expected:
      twins = [r for r in got if r['category_id'] == label and abs(r['score'] - score) < 1e-5
               and np.allclose(r['bbox'], bbox, atol=0.01)]
      assert twins, (stem, label, score, bbox)
      assert twins[0]['category'] == names[label - 1]
      assert twins[0]['file_name'] == os.path.join(images, file_name)
      assert twins[0]['image_id'] == stem
  assert sorted(os.listdir(draw)) == ['000000397133.jpg', 'a.jpg', 'b.png', 'c_grey.png',
                                      'd_rgba.png']
  with Image.open(os.path.join(draw, 'd_rgba.png')) as drawn:
    assert drawn.size == (300, 160) and drawn.mode == 'RGB'


def test_nothing_readable_fails_and_writes_nothing(workdir, tmp_path):
  bad = tmp_path / 'bad.jpg'
  bad.write_bytes(b'\xff\xd8 truncated')
  output = str(tmp_path / 'dets.json')
  with pytest.raises(errors.UserError, match='none of the 1 files is a readable image'):
    detect.detect_files(workdir[0], [str(bad)], output, draw=str(tmp_path / 'drawn'))
  assert sorted(os.listdir(tmp_path)) == ['bad.jpg']


@pytest.mark.parametrize('problem', ['missing', 'unreadable_folder', 'draw_exists',
                                     'no_config'])
def test_bad_input_is_one_clear_error(workdir, images, tmp_path, monkeypatch, problem):
  output = str(tmp_path / 'dets.json')
  kwargs, inputs, work = {}, [images], workdir[0]
  if problem == 'missing':
    inputs, match = [str(tmp_path / 'nope.jpg')], 'nope.jpg: no such file or folder'
  elif problem == 'unreadable_folder':  # (chmod does not stop root: the listing fails here)
    def listdir(path):
      raise PermissionError(13, 'Permission denied', path)
    monkeypatch.setattr(detect.os, 'listdir', listdir)
    inputs, match = [images], r'images\d*: cannot read the folder \(Permission denied\)'
  elif problem == 'draw_exists':
    (tmp_path / 'drawn').mkdir()
    kwargs, match = {'draw': str(tmp_path / 'drawn')}, 'exists; give a new folder'
  else:
    work, match = str(tmp_path), 'has no config.json'
  with pytest.raises((errors.UserError, FileNotFoundError), match=match):
    detect.detect_files(work, inputs, output, **kwargs)
  assert not os.path.exists(output)


@pytest.mark.slow
def test_command_skips_non_images_and_reads_a_workdir_a_run_holds(workdir, images, tmp_path):
  """`python -m ssd_jax.detect` while a training run holds the workdir lock: detect takes no
  lock (it reads the newest complete checkpoint), names and counts the non-image, exits 0."""
  output = str(tmp_path / 'dets.json')
  lock_path = os.path.join(workdir[0], workdir_lib.LOCK)
  with workdir_lib.lock(workdir[0], 'train'):
    with open(lock_path) as f:
      held = f.read()
    result = command_line.run('ssd_jax.detect', f'--workdir={workdir[0]}', f'--output={output}',
                              '--score_threshold=0.12', images)
    with open(lock_path) as f:
      assert f.read() == held  # Untouched: still the run's.
  assert result.returncode == 0, result.stderr
  assert 'Traceback' not in result.stderr and 'error' not in result.stderr
  notes = os.path.join(images, 'notes.txt')
  assert f'Skipped 1 files that are not readable images: {notes}.' in result.stdout
  assert f'in 5 images from step 0 of {workdir[0]} written to {output}' in result.stdout
  with open(output) as f:
    assert {r['file_name'] for r in json.load(f)} <= {
        os.path.join(images, n) for n in os.listdir(images) if n != 'notes.txt'}


@pytest.mark.slow
def test_command_on_a_workdir_without_checkpoints_is_one_line(workdir, images, tmp_path):
  empty = tmp_path / 'run'
  empty.mkdir()
  shutil.copy(os.path.join(workdir[0], 'config.json'), empty / 'config.json')
  output = str(tmp_path / 'dets.json')
  result = command_line.run('ssd_jax.detect', f'--workdir={empty}', f'--output={output}', images)
  command_line.assert_one_error_line(result, 'ssd_jax.detect',
                                     f'--workdir={empty} has no checkpoints/ folder')
  assert not os.path.exists(output)


def test_boxes_are_clipped_to_the_image():
  """Decoded boxes can reach past the image (eval.clip_boxes is False by default); detect's
  pixel boxes stay inside it, and a box with nothing inside it is dropped."""
  boxes = np.array([[[-0.25, -0.5, 0.5, 1.75],   # Past the top, left and right.
                     [0.2, 0.3, 0.4, 0.5],      # Inside.
                     [1.1, 0.2, 1.3, 0.4],      # Wholly below the image.
                     [0.5, 0.5, 1.5, 1.5]]])    # Past the bottom right.
  detections = {'boxes': boxes, 'scores': np.array([[0.9, 0.8, 0.7, 0.6]]),
                'classes': np.array([[1, 2, 1, 2]]), 'valid': np.ones((1, 4), bool)}
  results = detect.to_results('x/img.jpg', detections, 0, (200, 100), ('a', 'b'), 0.5)
  assert [r['score'] for r in results] == [0.9, 0.8, 0.6]
  # Hand-computed: image 100 wide, 200 high.
  np.testing.assert_allclose([r['bbox'] for r in results],
                             [[0, 0, 100, 100], [30, 40, 20, 40], [50, 100, 50, 100]])


def test_image_ids_are_unique_per_run():
  assert detect.image_ids(['p/000000397133.jpg', 'p/a.png', 'q/b.jpg']) == {
      'p/000000397133.jpg': 397133, 'p/a.png': 'a', 'q/b.jpg': 'b'}  # COCO's numeric ids.
  assert detect.image_ids(['d/x/1.jpg', 'd/y/1.jpg', 'd/y/2.jpg', 'd/x/1.png']) == {
      'd/x/1.jpg': 'x/1.jpg', 'd/y/1.jpg': 'y/1', 'd/y/2.jpg': 2, 'd/x/1.png': 'x/1.png'}


def test_same_file_name_in_two_folders_gives_two_images(workdir, tmp_path, capsys):
  for folder, seed in (('x', 5), ('y', 6)):
    (tmp_path / folder).mkdir()
    scene(80, 100, seed).save(tmp_path / folder / '1.jpg')
  paths = [str(tmp_path / 'x' / '1.jpg'), str(tmp_path / 'y' / '1.jpg')]
  results = detect.detect_files(workdir[0], paths, str(tmp_path / 'd.json'),
                                score_threshold=0.0)
  assert 'their image_id is their path: x/1, y/1.' in capsys.readouterr().out
  by_id = {}
  for r in results:
    by_id.setdefault(r['image_id'], set()).add(r['file_name'])
  assert by_id == {'x/1': {paths[0]}, 'y/1': {paths[1]}}


def test_a_rotated_photo_is_detected_and_drawn_as_displayed(workdir, tmp_path):
  from tests import test_image_files  # pylint: disable=g-import-not-at-top
  photo = test_image_files.rotated_jpeg(str(tmp_path / 'phone.jpg'))
  draw = str(tmp_path / 'drawn')
  results = detect.detect_files(workdir[0], [photo], str(tmp_path / 'd.json'), draw=draw,
                                score_threshold=0.0)
  assert results
  h, w = test_image_files.HEIGHT, test_image_files.WIDTH
  for r in results:  # Boxes in the displayed frame (100 wide, 160 high), clipped to it.
    x, y, bw, bh = r['bbox']
    assert 0 <= x <= x + bw <= w and 0 <= y <= y + bh <= h
  with Image.open(os.path.join(draw, 'phone.jpg')) as drawn:
    assert drawn.size == (w, h)
