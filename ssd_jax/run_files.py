"""What a run writes in its workdir besides checkpoints: config.json and evaluation files.

- `config.json`: the config of the latest training run (`write_config`); an earlier, different
  one is kept as `config.<step>.json`. Its data keys (`data_config`) define the run's own
  validation data.
- `eval/step_<N>.json`: step N scored on the run's own validation data; the learning curve
  (`evaluation.plots`) reads only these.
- `eval/<tag>/step_<N>.json`: step N scored on other data (another data set, split, seed,
  folder, number of images, or the same config finding other files). The tag is
  `<dataset>-<split>-<first 8 hex digits of the fingerprint>`.

Each evaluation file records what it scored under `data` (`data_record`): data set, split,
number of images, the ground truth's sha256 (`evaluation.scored_data.Fingerprint`) and the
config keys that chose the data. A result never replaces one on other data: the same step and
metric on the same data updates its file; another metric on the same data is added to it.
"""

import json
import os
import re

import jax
import ml_collections
import numpy as np

from ssd_jax import evaluation
from ssd_jax import file_io
from ssd_jax import report
from ssd_jax.data import info as data_info
from ssd_jax.evaluation import scored_data

EVAL = 'eval'
CONFIG = 'config.json'


def write_config(workdir: str, config: ml_collections.ConfigDict, step: int | None) -> None:
  """Writes <workdir>/config.json; a different previous one is kept as config.<step>.json.

  Called after the restore (and its signature check) passed, so a rejected run changes nothing.
  """
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, CONFIG)
  text = config.to_json_best_effort(indent=2)
  if os.path.exists(path):
    with open(path) as f:
      old = f.read()
    if old == text:
      return
    kept, n = os.path.join(workdir, f'config.{step or 0}.json'), 1
    while os.path.exists(kept):
      kept, n = os.path.join(workdir, f'config.{step or 0}.{n}.json'), n + 1
    file_io.write_text(kept, old)
  file_io.write_text(path, text)


def read_config(workdir: str) -> dict | None:
  """<workdir>/config.json as plain json (None when there is none)."""
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    return None
  return file_io.read_json(path, 'run config')


def data_config(config) -> dict:
  """The config keys that choose the evaluation data, as json values, defaults filled in.

  `config` is a ConfigDict or its json (`read_config`). The tfds data_dir is left out: it says
  where the data is cached, not what it is (the fingerprint tells a different copy apart).
  """
  inp, ev = config['input'], config['eval']
  dataset = inp['dataset']
  keys = {
      'input.dataset': dataset,
      'input.eval_split': inp.get('eval_split') or
                          data_info.DEFAULT_SPLITS.get(dataset, (None, None))[1],
      'eval.num_images': ev.get('num_images'),
      # Ground truth beyond this many boxes per image is dropped.
      'input.eval_max_boxes': inp.get('eval_max_boxes') or inp.get('max_boxes'),
      'input.class_names': inp.get('class_names'),
      'input.category_ids': inp.get('category_ids'),
  }
  if dataset == 'shapes':
    keys.update({f'input.{k}': inp.get(k) for k in ('shapes_num_validation', 'shapes_seed')})
  if dataset.endswith('_folder'):
    keys.update({f'input.{k}': inp.get(k) for k in ('folder', 'on_error')})
  return json.loads(json.dumps(keys, default=list))  # tuples -> lists, as in config.json


def is_own_data(workdir: str, config) -> bool:
  """Whether `config` evaluates the run's own validation data (config.json's data keys).

  True when the workdir has no config.json (nothing to compare with).
  """
  saved = read_config(workdir)
  return saved is None or data_config(saved) == data_config(config)


def data_record(config, info, fingerprint: scored_data.Fingerprint) -> dict:
  """What an evaluation scored, as its file records it (`data`)."""
  return {'dataset': info.name, 'split': info.eval_split,
          'num_images': fingerprint.num_images, 'fingerprint': fingerprint.hexdigest(),
          'config': data_config(config)}


def tag(data: dict, digits: int = 8) -> str:
  """The folder name of evaluations on `data`: `<dataset>-<split>-<fingerprint[:digits]>`."""
  name = f"{data['dataset']}-{data['split']}-{data['fingerprint'][:digits]}"
  return re.sub(r'[^A-Za-z0-9_.=-]+', '_', name)


def describe(data: dict | None) -> str:
  if not data:
    return 'its validation data'
  return (f"{data['dataset']} {data['split']} ({data['num_images']} images, ground truth "
          f"sha256 {data['fingerprint'][:8]})")


def _read(path: str) -> dict | None:
  try:
    with open(path) as f:
      doc = json.load(f)
  except (FileNotFoundError, ValueError):
    return None
  return doc if isinstance(doc, dict) else None


def _fingerprint(doc: dict | None) -> str | None:
  return ((doc or {}).get('data') or {}).get('fingerprint')


def eval_path(workdir: str, step: int, data: dict | None, own: bool) -> str:
  """Where the evaluation of `step` on `data` goes (see the module docstring).

  `own`: `data` is the run's own validation data by its config. A file of the run's own
  folder that records other ground truth for the step stays; the result goes to its tag's
  folder instead. Within a tag's folder, a clash of the short fingerprint takes the whole one.
  """
  own_path = os.path.join(workdir, EVAL, f'step_{step}.json')
  if data is None:
    return own_path
  if own and _fingerprint(_read(own_path)) in (None, data['fingerprint']):
    return own_path
  path = os.path.join(workdir, EVAL, tag(data), f'step_{step}.json')
  if _fingerprint(_read(path)) not in (None, data['fingerprint']):
    path = os.path.join(workdir, EVAL, tag(data, digits=64), f'step_{step}.json')
  return path


def write_eval(workdir: str, step: int, result, writer, metric: str, *, own: bool = True,
               elapsed_s: float | None = None) -> str:
  """Prints the per-class table; merges into the step's evaluation file; TensorBoard scalars.

  The file (`eval_path`) is that of the data `result.data` records (see `data_record`;
  None: the run's own). `own`: the data is the run's own validation data by its config. The
  file keeps every metric computed for the step on that data under `by_metric[<metric>]`; its
  top level (`metric`, `metrics`, per-class counts) is the metric it was first written with,
  and is updated only by a new evaluation with that same metric. `elapsed_s` (the training
  run's wall seconds at this evaluation) is set by training (a resumed run that evaluates the
  step again replaces it, as it replaces the metrics) and kept by eval mode. Returns the path.
  """
  data = result.data
  table = evaluation.format_table(result.metrics, result.class_names, result.num_ground_truth,
                                  result.num_detections)
  report.note(f'Evaluation at step {step} on {describe(data)}:\n{table}')
  path = eval_path(workdir, step, data, own)
  if jax.process_index() != 0:
    return path
  old = _read(path)
  doc = evaluation.to_json_dict(result, step=step, metric=metric)
  if data is not None:
    doc['data'] = data
  first = old is None or old['metric'] == metric
  if not first:
    doc = old
  if elapsed_s is not None and first:
    doc['elapsed_s'] = round(elapsed_s, 1)
  elif (old or {}).get('elapsed_s') is not None:
    doc['elapsed_s'] = old['elapsed_s']
  doc['by_metric'] = (old or {}).get('by_metric', {})
  doc['by_metric'][metric] = evaluation.to_json_dict(result)
  file_io.write_text(path, json.dumps(doc, indent=2))  # Never a partial file.
  own_path = os.path.join(workdir, EVAL, f'step_{step}.json')
  if path != own_path:
    report.note(f'Wrote {path}: other data than the run\'s own validation data '
                f'({CONFIG}), so {own_path} is left as it is.')
  folder = os.path.relpath(os.path.dirname(path), workdir).replace(os.sep, '/')
  prefix = folder if first else f'{folder}_{metric}'
  writer.write_scalars(step, {f'{prefix}/{k}': v for k, v in result.metrics.items()
                              if np.isfinite(v)})
  return path
