r"""Parity of `convert torchvision-ssd300` + `detect` with torchvision's own `ssd300_vgg16`.

  <torch-venv>/bin/python experiments/torchvision_parity.py --jax_python=.venv/bin/python \
      --out=/tmp/parity [photo.jpg ...]

Runs in a separate virtual environment with torch, torchvision, safetensors and pillow (not a
requirement of this project, not part of CI); the ssd_jax side runs as the two commands a user
runs, with --jax_python. Steps: a seeded random-initialised torchvision `ssd300_vgg16` (91 COCO
labels) is saved as .safetensors; from each photo, four test images are made (the photo as it
is, a 0.6x PNG, a greyscale PNG and an RGBA PNG crop: several sizes and modes); torchvision
detects on each (`model.eval()`, its own transform and postprocessing); `python -m
ssd_jax.convert torchvision-ssd300` and `python -m ssd_jax.detect --score_threshold=0` do the
same. Passes when, for every image, each of torchvision's --top (50) highest-scoring detections
has a twin among ours: same label, IoU >= 0.99, score within 1e-3. Prints per-image figures;
exits 1 on a failure.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
from safetensors import torch as st
import torch
import torchvision
from torchvision.models.detection import ssd300_vgg16
from torchvision.transforms.functional import to_tensor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_images(photos, folder):
  """From each photo: itself, a 0.6x PNG, a greyscale PNG and an RGBA crop PNG."""
  os.makedirs(folder)
  for k, photo in enumerate(photos):
    shutil.copy(photo, os.path.join(folder, f'{k}_orig{os.path.splitext(photo)[1].lower()}'))
    with Image.open(photo) as im:
      im = im.convert('RGB')
      w, h = im.size
      im.resize((max(1, int(w * 0.6)), max(1, int(h * 0.6))), Image.BILINEAR).save(
          os.path.join(folder, f'{k}_small.png'))
      im.convert('L').save(os.path.join(folder, f'{k}_grey.png'))
      crop = im.crop((w // 8, h // 5, w - w // 7, h - h // 9)).convert('RGBA')
      crop.putalpha(Image.linear_gradient('L').resize(crop.size))
      crop.save(os.path.join(folder, f'{k}_rgba.png'))
  return sorted(os.listdir(folder))


def iou_xyxy(a, b):
  """[N, 4] x [M, 4] -> [N, M]."""
  lo = np.maximum(a[:, None, :2], b[None, :, :2])
  hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.prod(np.clip(hi - lo, 0, None), -1)
  area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)
  return inter / (area(a)[:, None] + area(b)[None] - inter)


def compare(theirs, ours, top):
  """Twins of torchvision's `top` best detections among ours: (found, worst IoU, worst dscore)."""
  t = {k: v[:top] for k, v in theirs.items()}
  if not t['labels'].size:
    return 0, 0, 1.0, 0.0
  iou = iou_xyxy(t['boxes'], ours['boxes']) if len(ours['labels']) else np.zeros(
      (len(t['labels']), 0))
  found, worst_iou, worst_ds = 0, 1.0, 0.0
  for i in range(len(t['labels'])):
    ds = np.abs(ours['scores'] - t['scores'][i])
    ok = (ours['labels'] == t['labels'][i]) & (iou[i] >= 0.99) & (ds <= 1e-3)
    if ok.any():
      found += 1
      j = np.flatnonzero(ok)[np.argmax(iou[i][ok])]
      worst_iou, worst_ds = min(worst_iou, iou[i, j]), max(worst_ds, ds[j])
  return len(t['labels']), found, worst_iou, worst_ds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('photos', nargs='*', help='Photos (default: matplotlib\'s sample photo).')
  parser.add_argument('--jax_python', required=True, help='Python of the ssd_jax environment.')
  parser.add_argument('--out', required=True, help='Folder to create for all files.')
  parser.add_argument('--top', type=int, default=50)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  if os.path.exists(args.out):
    sys.exit(f'--out={args.out} exists; give a new folder.')
  photos = args.photos or [subprocess.check_output(
      [args.jax_python, '-c', 'import matplotlib.cbook as c; '
       'print(c.get_sample_data("grace_hopper.jpg", asfileobj=False))'], text=True).strip()]
  os.makedirs(args.out)
  names = make_images(photos, os.path.join(args.out, 'images'))

  torch.manual_seed(args.seed)
  model = ssd300_vgg16(weights=None, weights_backbone=None).eval()
  weights = os.path.join(args.out, 'ssd300_vgg16_random.safetensors')
  st.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
  theirs = {}
  with torch.no_grad():
    for name in names:
      with Image.open(os.path.join(args.out, 'images', name)) as im:
        out = model([to_tensor(im.convert('RGB'))])[0]
      theirs[os.path.splitext(name)[0]] = {k: out[k].numpy() for k in ('boxes', 'scores',
                                                                       'labels')}

  workdir, dets = os.path.join(args.out, 'workdir'), os.path.join(args.out, 'ours.json')
  for command in (['ssd_jax.convert', 'torchvision-ssd300', f'--input={weights}',
                   '--config=configs/torchvision_ssd300.py', f'--output={workdir}'],
                  ['ssd_jax.detect', f'--workdir={workdir}', os.path.join(args.out, 'images'),
                   f'--output={dets}', '--score_threshold=0', '--batch_size=4']):
    subprocess.run([args.jax_python, '-m'] + command, cwd=REPO, check=True)
  with open(dets) as f:
    results = json.load(f)

  print(f'torch {torch.__version__}, torchvision {torchvision.__version__}; seed {args.seed}; '
        f'top {args.top}')
  failed = False
  for stem, t in theirs.items():
    mine = [r for r in results if r['image'] == stem]
    ours = {'labels': np.asarray([r['category_id'] for r in mine]),
            'scores': np.asarray([r['score'] for r in mine]),
            'boxes': np.asarray([[x, y, x + w, y + h] for x, y, w, h in
                                 (r['bbox'] for r in mine)]).reshape(-1, 4)}
    n, found, worst_iou, worst_ds = compare(t, ours, args.top)
    with Image.open(os.path.join(args.out, 'images',
                                 [m for m in names if m.startswith(stem + '.')][0])) as im:
      size, mode = im.size, im.mode
    failed |= found < n or n == 0
    print(f'{stem:>10} {size[0]}x{size[1]} {mode:<4} torchvision {len(t["labels"])} dets '
          f'(top score {t["scores"][:1].round(4)}), ours {len(mine)}; twins {found}/{n}, '
          f'min IoU {worst_iou:.5f}, max |dscore| {worst_ds:.2e}')
  print('PARITY FAILED' if failed else 'PARITY OK')
  sys.exit(1 if failed else 0)


if __name__ == '__main__':
  main()
