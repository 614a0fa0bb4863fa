"""Per-class precision/recall curves as PNG files (matplotlib, Agg backend)."""

import functools
import os
import re

import matplotlib
matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

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
