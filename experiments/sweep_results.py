"""A sweep's results table: one row per variant, as results.md, results.csv and results.png.

Rows are built from the `sweep_result.json` files the runner writes (experiments/sweep.py);
the columns are documented in docs/sweeps.md.
"""

import csv
import functools
import io
import json
import math
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.ticker  # pylint: disable=g-import-not-at-top
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from ssd_jax import file_io
from ssd_jax.evaluation import size_bins

COLUMNS = ('variant', 'boxes_per_cell', 'priors', 'seeds', 'mAP', 'mAP_std', 'mAP_small',
           'mAP_medium', 'mAP_large', 'positives_per_object', 'train_images_per_s',
           'inference_images_per_s', 'overrides')
# COCO's own size metrics stand in for the VOC size bins with eval.metric='coco'.
_COCO_SIZE = {'mAP_small': 'APs', 'mAP_medium': 'APm', 'mAP_large': 'APl'}


def _mean(values):
  values = [v for v in values if v is not None and not math.isnan(v)]
  return float(np.mean(values)) if values else None


def variant_row(name: str, overrides: dict, runs: list[dict]) -> dict:
  """One table row from the finished runs (seeds) of a variant; runs[0] is seed 0's."""
  first = runs[0]
  maps = [m for m in (r['metrics'].get('mAP') for r in runs) if m is not None]
  row = {'variant': name,
         'boxes_per_cell': '/'.join(str(k) for k in first['boxes_per_cell']),
         'priors': first['priors'], 'seeds': len(runs), 'mAP': _mean(maps),
         'mAP_std': float(np.std(maps, ddof=1)) if len(maps) > 1 else None,
         'positives_per_object': first['positives_per_object'],
         'train_images_per_s': first['train_images_per_s'],
         'inference_images_per_s': first['inference_images_per_s'],
         'overrides': json.dumps(overrides)}
  for key, coco_key in _COCO_SIZE.items():
    row[key] = _mean([r['metrics'].get(key, r['metrics'].get(coco_key)) for r in runs])
  return row


def _fmt(value, digits=3):
  if value is None:
    return '-'
  if isinstance(value, float):
    return f'{value:.{digits}f}'
  return str(value)


def write_markdown(path: str, rows: list[dict], title: str, missing: list[str]) -> None:
  """A markdown table: variant, boxes per cell, priors, mAP (± std), size bins, rates."""
  bins = ', '.join(f'{n} [{lo:g}, {hi:g})' for n, lo, hi in size_bins.SIZE_BINS)
  lines = [f'# {title}', '',
           f'Size bins by box area / image area: {bins}. Positives per object: default boxes '
           'with IoU >= loss.iou_threshold per validation object. Images/s: benchmark of the '
           'compiled train step and of forward + postprocessing on random batches '
           '(docs/sweeps.md).', '',
           '| variant | boxes per cell | priors | mAP | small | medium | large | positives '
           '/ object | train images/s | inference images/s |',
           '|---|---|---|---|---|---|---|---|---|---|']
  for r in rows:
    m = _fmt(r['mAP'])
    if r['mAP_std'] is not None:
      m += f" ± {r['mAP_std']:.3f} ({r['seeds']} seeds)"
    lines.append(f"| {r['variant']} | {r['boxes_per_cell']} | {r['priors']} | {m} | "
                 f"{_fmt(r['mAP_small'])} | {_fmt(r['mAP_medium'])} | {_fmt(r['mAP_large'])} | "
                 f"{_fmt(r['positives_per_object'], 1)} | {_fmt(r['train_images_per_s'], 1)} | "
                 f"{_fmt(r['inference_images_per_s'], 1)} |")
  if missing:
    lines += ['', f"Not finished yet: {', '.join(missing)}."]
  file_io.write_text(path, '\n'.join(lines) + '\n')


def write_csv(path: str, rows: list[dict]) -> None:
  text = io.StringIO(newline='')
  writer = csv.DictWriter(text, fieldnames=COLUMNS)
  writer.writeheader()
  for r in rows:
    writer.writerow({k: '' if r[k] is None else r[k] for k in COLUMNS})
  file_io.write_text(path, text.getvalue())


def write_plot(path: str, rows: list[dict], title: str) -> None:
  """mAP against the number of priors, one labelled point per variant (std as error bars)."""
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  for r in rows:
    if r['mAP'] is None:
      continue
    ax.errorbar([r['priors']], [r['mAP']], yerr=None if r['mAP_std'] is None else [r['mAP_std']],
                fmt='o', capsize=3)
    ax.annotate(r['variant'], (r['priors'], r['mAP']), textcoords='offset points',
                xytext=(5, 5), fontsize=8)
  ax.set_xscale('log')
  ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.set_xticks(sorted({r['priors'] for r in rows}))
  ax.margins(0.15)  # room for the labels
  ax.set_xlabel('default boxes (priors)')
  ax.set_ylabel('mAP')
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  fig.tight_layout()
  try:
    file_io.write_atomically(path, functools.partial(fig.savefig, dpi=120, format='png'))
  finally:
    plt.close(fig)


def write_all(workdir: str, rows: list[dict], title: str, missing: list[str]) -> list[str]:
  """results.md, results.csv, results.png in `workdir`; returns their paths."""
  paths = [os.path.join(workdir, f'results.{ext}') for ext in ('md', 'csv', 'png')]
  write_markdown(paths[0], rows, title, missing)
  write_csv(paths[1], rows)
  write_plot(paths[2], rows, title)
  return paths
