"""What an evaluation returns, and its per-class table.

Metric names (keys of `EvalResult.metrics`, also what the evaluators' `result()` returns):

- `mAP`: the headline number. VOC: mean of the per-class AP over classes that have ground truth
  (not difficult); COCO: AP@[.5:.95] (= `AP`).
- `AP/<class name>`: per-class AP (VOC: at IoU 0.5 with the chosen metric; COCO: AP@[.5:.95]).
  `nan` for a class without ground truth; such a class is left out of `mAP`.
- COCO only: the 12 numbers of pycocotools' `COCOeval.summarize()`, as `AP`, `AP50`, `AP75`,
  `APs`, `APm`, `APl`, `AR1`, `AR10`, `AR100`, `ARs`, `ARm`, `ARl` (pycocotools gives -1 where a
  number is undefined, e.g. `APs` without small objects; kept as is), and `AP50/<class name>`.
"""

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

# (label, recall [N], precision [N]) curves per class, for plots.
Curve = tuple[str, np.ndarray, np.ndarray]


@dataclasses.dataclass
class EvalResult:
  """Metrics plus what the table and the plots need."""
  metrics: dict[str, float]
  class_names: tuple[str, ...]
  num_ground_truth: dict[str, int]  # Per class: VOC not difficult, COCO not crowd.
  num_detections: dict[str, int]
  curves: dict[str, list[Curve]] = dataclasses.field(default_factory=dict)
  summary: str = ''  # pycocotools' summarize() printout (COCO only).
  # What was scored (`run_files.data_record`: data set, split, images, ground truth sha256);
  # None where the caller did not record it.
  data: dict | None = None


def _format_value(value) -> str:
  return '     -' if value is None or math.isnan(value) else f'{value:6.4f}'


def format_table(metrics: Mapping[str, float], class_names: Sequence[str],
                 num_ground_truth: Mapping[str, int] | None = None,
                 num_detections: Mapping[str, int] | None = None) -> str:
  """Per-class table (one column per `<metric>/<class>` family), then the summary metrics."""
  columns = sorted({key.split('/', 1)[0] for key in metrics if '/' in key},
                   key=lambda c: (c != 'AP', c))
  width = max([len('class')] + [len(name) for name in class_names] +
              [len(key) for key in metrics if '/' not in key])
  header = f"{'class':<{width}}"
  if num_ground_truth is not None:
    header += f" {'gt':>6}"
  if num_detections is not None:
    header += f" {'dets':>7}"
  header += ''.join(f' {column:>6}' for column in columns)
  lines = [header, '-' * len(header)]
  for name in class_names:
    line = f'{name:<{width}}'
    if num_ground_truth is not None:
      line += f' {num_ground_truth.get(name, 0):>6d}'
    if num_detections is not None:
      line += f' {num_detections.get(name, 0):>7d}'
    line += ''.join(f' {_format_value(metrics.get(f"{column}/{name}"))}' for column in columns)
    lines.append(line)
  lines.append('-' * len(header))
  for key, value in metrics.items():
    if '/' not in key:
      lines.append(f'{key:<{width}} {_format_value(value)}')
  return '\n'.join(lines)


def print_table(metrics: Mapping[str, float], class_names: Sequence[str], **kwargs) -> None:
  """Prints `format_table(metrics, class_names, **kwargs)`."""
  print(format_table(metrics, class_names, **kwargs))


def json_safe(metrics: Mapping[str, float]) -> dict[str, float | None]:
  """Metrics as plain floats with `nan` -> None (JSON null), for `json.dump`."""
  return {key: None if math.isnan(float(value)) else float(value)
          for key, value in metrics.items()}


def to_json_dict(result: EvalResult, **info) -> dict:
  """The JSON document the `evaluate` command writes: `info` (metric, paths), `metrics` (nan as
  null), and the per-class `num_ground_truth` and `num_detections`."""
  return {**info, 'metrics': json_safe(result.metrics),
          'num_ground_truth': dict(result.num_ground_truth),
          'num_detections': dict(result.num_detections)}
