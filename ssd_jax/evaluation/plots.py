"""Per-class precision/recall curves as PNG files (matplotlib, Agg backend)."""

import functools
import math
import os
import re

from absl import logging
import matplotlib
matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

from ssd_jax import errors
from ssd_jax import file_io
from ssd_jax.evaluation import result as result_lib


def _file_name(class_name: str) -> str:
  return 'pr_' + re.sub(r'[^A-Za-z0-9_.-]+', '_', class_name) + '.png'


def save_pr_curves(result: result_lib.EvalResult, out_dir: str) -> list[str]:
  """Writes `pr_<class>.png` per class with a curve (not those without ground truth).

  VOC: the raw curve of the ranked detections; COCO: pycocotools' interpolated precision at
  IoU 0.5 and 0.75 (area all, 100 detections). Returns the paths written. Each file is written
  whole or not at all (`file_io.write_atomically`, which raises UserError naming it).
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for name in result.class_names:
    if name not in result.curves:
      continue
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    for label, recall, precision in result.curves[name]:
      ax.plot(recall, precision, label=label)
    ap = result.metrics.get(f'AP/{name}', float('nan'))
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='recall', ylabel='precision',
           title=f'{name}: AP {ap:.4f}')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower left')
    fig.tight_layout()
    path = os.path.join(out_dir, _file_name(name))
    try:
      file_io.write_atomically(path, functools.partial(fig.savefig, format='png'))
    finally:
      plt.close(fig)
    paths.append(path)
  return paths


def read_curve(eval_dir: str, metric: str = 'mAP') -> list[tuple[int, float | None, float]]:
  """(step, train seconds or None, value) of `metric` per `eval/step_<N>.json`, by step.

  Files without the metric (or with a non-finite value) are left out; unreadable ones too,
  with a warning naming them. Seconds are None unless the file has a finite `elapsed_s`.
  """
  points = []
  for name in os.listdir(eval_dir) if os.path.isdir(eval_dir) else ():
    match = re.fullmatch(r'step_(\d+)\.json', name)
    if not match:
      continue
    try:
      doc = file_io.read_json(os.path.join(eval_dir, name), 'evaluation file')
      if not isinstance(doc, dict) or not isinstance(doc.get('metrics', {}), dict):
        raise ValueError('not an evaluation file: no metrics object')
    except (ValueError, OSError) as e:
      logging.warning('Learning curve: %s left out (%s).', name, errors.one_line(e))
      continue
    value = doc.get('metrics', {}).get(metric)
    if _finite(value):
      seconds = doc.get('elapsed_s')
      points.append((int(match.group(1)), float(seconds) if _finite(seconds) else None,
                     float(value)))
  return sorted(points)


def _finite(value) -> bool:
  return file_io.is_number(value) and math.isfinite(value)


def save_learning_curve(eval_dir: str, path: str, metric: str = 'mAP') -> bool:
  """Plots `metric` against training step and against wall time from `eval_dir`'s files.

  Wall time is each file's `elapsed_s` (seconds since the training run started, resumed runs
  summed); the right panel is left out when no file has it. Returns False (and writes nothing)
  when there is no point to plot. The PNG is written whole or not at all.
  """
  points = read_curve(eval_dir, metric)
  if not points:
    return False
  steps, seconds, values = zip(*points)
  timed = [(s / 60, v) for s, v in zip(seconds, values) if s is not None]
  fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(9 if timed else 4.5, 3.6), dpi=100,
                           squeeze=False, sharey=True)
  panels = [(axes[0, 0], steps, values, 'training step')]
  if timed:
    panels.append((axes[0, 1], *zip(*timed), 'wall time since start (min)'))
  for ax, xs, ys, label in panels:
    ax.plot(xs, ys, marker='o')
    ax.set(xlabel=label, ylim=(0, max(1.0, max(ys) * 1.05)))
    ax.grid(True, alpha=0.3)
  axes[0, 0].set_ylabel(f'validation {metric}')
  fig.suptitle(f'{metric} {values[-1]:.4f} at step {steps[-1]}')
  fig.tight_layout()
  try:
    file_io.write_atomically(path, functools.partial(fig.savefig, format='png'))
  finally:
    plt.close(fig)
  return True
