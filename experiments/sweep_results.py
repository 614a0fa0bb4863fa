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

COLUMNS = ('variant', 'boxes_per_cell', 'priors', 'seeds', 'mAP', 'mAP_std', 'mAP_diff',
           'mAP_diff_low', 'mAP_diff_high', 'diff_pairs', 'diff_excludes_zero', 'mAP_small',
           'mAP_medium', 'mAP_large', 'positives_per_object', 'train_images_per_s',
           'inference_images_per_s', 'overrides')
# COCO's own size metrics stand in for the VOC size bins with eval.metric='coco'.
_COCO_SIZE = {'mAP_small': 'APs', 'mAP_medium': 'APm', 'mAP_large': 'APl'}
CONFIDENCE = 0.95


def _mean(values):
  values = [v for v in values if v is not None and not math.isnan(v)]
  return float(np.mean(values)) if values else None


def t_quantile(p: float, df: int) -> float:
  """The p-quantile of Student's t distribution with `df` degrees of freedom."""
  from scipy import stats  # pylint: disable=g-import-not-at-top  # (jax depends on scipy)
  return float(stats.t.ppf(p, df))


def paired_difference(values: dict[int, float], reference: dict[int, float],
                      confidence: float = CONFIDENCE) -> dict:
  """Mean of values[k] - reference[k] over the seeds k both have, with its t interval.

  Returns {'diff', 'low', 'high', 'pairs', 'excludes_zero'}: the interval is
  mean +- t_{(1+confidence)/2, n-1} * sd / sqrt(n) over the n seed pairs (sd with ddof 1);
  with fewer than 2 pairs there is no interval (low, high, excludes_zero None).
  """
  seeds = sorted(k for k in values if k in reference and values[k] is not None
                 and reference[k] is not None)
  d = np.array([values[k] - reference[k] for k in seeds], np.float64)
  out = {'diff': float(d.mean()) if len(d) else None, 'low': None, 'high': None,
         'pairs': len(d), 'excludes_zero': None}
  if len(d) >= 2:
    half = t_quantile((1 + confidence) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    out['low'], out['high'] = out['diff'] - half, out['diff'] + half
    out['excludes_zero'] = bool(out['low'] > 0 or out['high'] < 0)
  return out


def _maps_by_seed(runs: list[dict]) -> dict[int, float]:
  return {r['seed']: r['metrics']['mAP'] for r in runs
          if r['metrics'].get('mAP') is not None and not math.isnan(r['metrics']['mAP'])}


def variant_row(name: str, overrides: dict, runs: list[dict],
                reference_runs: list[dict] | None = None) -> dict:
  """One table row from the finished runs (seeds) of a variant, sorted by seed.

  `reference_runs`: the reference variant's finished runs, for the paired difference (None
  for the reference itself).
  """
  runs = sorted(runs, key=lambda r: r['seed'])
  first = runs[0]  # Prior counts and rates are measured with seed 0 (or the first finished).
  maps = list(_maps_by_seed(runs).values())
  row = {'variant': name,
         'boxes_per_cell': '/'.join(str(k) for k in first['boxes_per_cell']),
         'priors': first['priors'], 'seeds': len(runs),
         'seed_offsets': [r['seed'] for r in runs], 'mAP': _mean(maps),
         'mAP_std': float(np.std(maps, ddof=1)) if len(maps) > 1 else None,
         'positives_per_object': _first(runs, 'positives_per_object'),
         'train_images_per_s': _first(runs, 'train_images_per_s'),
         'inference_images_per_s': _first(runs, 'inference_images_per_s'),
         'overrides': json.dumps(overrides), 'is_reference': reference_runs is None}
  diff = (paired_difference(_maps_by_seed(runs), _maps_by_seed(reference_runs))
          if reference_runs is not None else {})
  row.update({'mAP_diff': diff.get('diff'), 'mAP_diff_low': diff.get('low'),
              'mAP_diff_high': diff.get('high'), 'diff_pairs': diff.get('pairs'),
              'diff_excludes_zero': diff.get('excludes_zero')})
  for key, coco_key in _COCO_SIZE.items():
    row[key] = _mean([r['metrics'].get(key, r['metrics'].get(coco_key)) for r in runs])
  return row


def _first(runs, key):
  """The per-variant measurement (written with the variant's seed-0 run)."""
  return next((r[key] for r in runs if r[key] is not None), None)


def _fmt(value, digits=3):
  if value is None:
    return '-'
  if isinstance(value, float):
    return f'{value:.{digits}f}'
  return str(value)


def _signed(value):
  return '-' if value is None else f'{value:+.3f}'


def difference_cell(row: dict) -> str:
  """'+0.031 [+0.012, +0.050] *' (* when the interval excludes 0; '(2 pairs)' added when the
  reference lacks some of the variant's seeds), 'reference', ..."""
  if row['is_reference']:
    return 'reference'
  if row['mAP_diff'] is None:
    return '- (no seed in common)'
  if row['mAP_diff_low'] is None:
    return f"{_signed(row['mAP_diff'])} (1 pair: no interval)"
  mark = ' *' if row['diff_excludes_zero'] else ''
  pairs = f" ({row['diff_pairs']} pairs)" if row['diff_pairs'] < row['seeds'] else ''
  return (f"{_signed(row['mAP_diff'])} [{_signed(row['mAP_diff_low'])}, "
          f"{_signed(row['mAP_diff_high'])}]{mark}{pairs}")


def write_markdown(path: str, rows: list[dict], title: str, info: dict) -> None:
  """A markdown table: variant, boxes per cell, priors, mAP (mean ± std), the paired difference
  to the reference with its 95% interval, size bins, rates; then what produced it.

  `info`: steps, seeds (the seed offsets tabulated), base_seed, reference, command (or None),
  missing and left_out (lists of 'variant (...)' strings).
  """
  bins = ', '.join(f'{n} [{lo:g}, {hi:g})' for n, lo, hi in size_bins.SIZE_BINS)
  seeds = ', '.join(str(info['base_seed'] + k) for k in info['seeds'])
  pct = f'{CONFIDENCE:.0%}'
  lines = [f'# {title}', '',
           f"{info['steps']} training steps per run; seeds {seeds} (`config.seed` and "
           f"`config.input.seed` + {', '.join(str(k) for k in info['seeds'])}); the base "
           'config and every variant\'s overrides are in `sweep.json`.', '',
           'Reproduce: ' + (f"`{info['command']}`" if info['command'] else
                            '(called from Python: no command line recorded).'), '',
           f"mAP: mean ± sample standard deviation over the seeds. Δ mAP: the paired "
           f"difference to `{info['reference']}` over the seeds both have, mean [{pct} "
           'confidence interval, t distribution with pairs - 1 degrees of freedom]; '
           '* marks an interval that excludes 0.', '',
           '| variant | boxes per cell | priors | seeds | mAP | Δ mAP | small | medium | large | '
           'positives / object | train images/s | inference images/s |',
           '|---|---|---|---|---|---|---|---|---|---|---|---|']
  for r in rows:
    m = _fmt(r['mAP'])
    if r['mAP_std'] is not None:
      m += f" ± {r['mAP_std']:.3f}"
    lines.append(f"| {r['variant']} | {r['boxes_per_cell']} | {r['priors']} | {r['seeds']} | "
                 f"{m} | {difference_cell(r)} | "
                 f"{_fmt(r['mAP_small'])} | {_fmt(r['mAP_medium'])} | {_fmt(r['mAP_large'])} | "
                 f"{_fmt(r['positives_per_object'], 1)} | {_fmt(r['train_images_per_s'], 1)} | "
                 f"{_fmt(r['inference_images_per_s'], 1)} |")
  lines += ['', f'Size bins by box area / image area: {bins}. Positives per object: default '
            'boxes with IoU >= loss.iou_threshold per validation object. Images/s: benchmark '
            'of the compiled train step and of forward + postprocessing on random batches '
            '(docs/sweeps.md).']
  if info['missing']:
    lines += ['', f"Not finished yet: {', '.join(info['missing'])}."]
  if info['left_out']:
    lines += ['', f"Finished but left out (beyond --seeds={len(info['seeds'])}): "
              f"{', '.join(info['left_out'])}."]
  file_io.write_text(path, '\n'.join(lines) + '\n')


def write_csv(path: str, rows: list[dict]) -> None:
  text = io.StringIO(newline='')
  writer = csv.DictWriter(text, fieldnames=COLUMNS)
  writer.writeheader()
  for r in rows:
    writer.writerow({k: '' if r[k] is None else r[k] for k in COLUMNS})
  file_io.write_text(path, text.getvalue())


def write_plot(path: str, rows: list[dict], title: str, reference: str) -> None:
  """Left: mAP against the number of priors, one labelled point per variant (±1 std error
  bars). Right: each variant's paired difference to the reference with its 95% interval."""
  fig, (ax, ax_diff) = plt.subplots(1, 2, figsize=(11, 4.4),
                                    gridspec_kw={'width_ratios': [3, 2]})
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
  ax.set_ylabel('mAP (mean ± std over seeds)')
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  for y, r in enumerate(rows):
    if r['mAP_diff'] is None:
      continue
    err = None
    if r['mAP_diff_low'] is not None:
      err = [[r['mAP_diff'] - r['mAP_diff_low']], [r['mAP_diff_high'] - r['mAP_diff']]]
    ax_diff.errorbar([r['mAP_diff']], [y], xerr=err, fmt='o', capsize=3,
                     color='C3' if r['diff_excludes_zero'] else 'C0')
  ax_diff.axvline(0, color='0.5', lw=1)
  ax_diff.set_yticks(range(len(rows)), [r['variant'] + (' (reference)' if r['is_reference'] else '')
                                         for r in rows], fontsize=8)
  ax_diff.set_ylim(len(rows) - 0.5, -0.5)
  ax_diff.set_xlabel(f'Δ mAP vs {reference} ({CONFIDENCE:.0%} CI, paired)')
  ax_diff.grid(True, axis='x', alpha=0.3)
  fig.tight_layout()
  try:
    file_io.write_atomically(path, functools.partial(fig.savefig, dpi=120, format='png'))
  finally:
    plt.close(fig)


def write_all(workdir: str, rows: list[dict], title: str, info: dict) -> list[str]:
  """results.md, results.csv, results.png in `workdir` (`info`: see write_markdown); returns
  their paths."""
  paths = [os.path.join(workdir, f'results.{ext}') for ext in ('md', 'csv', 'png')]
  write_markdown(paths[0], rows, title, info)
  write_csv(paths[1], rows)
  write_plot(paths[2], rows, title, info['reference'])
  return paths
