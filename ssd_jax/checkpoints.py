"""Orbax checkpoints: periodic saves, keep the last N plus the best by eval mAP, resume.

Each checkpoint holds the train state (params, optimizer state, step) and a small JSON
`meta` item with what must agree for a restore to make sense (model, default boxes, classes).
Restoring into a config that disagrees fails with a message naming each mismatching key.
The `meta` item also holds a checksum of every array of the state (`checksums`), checked on
every restore: an array changed on disk (flipped bits that still decode) is damage, like a
truncated file.

The eval mAP of a step is stored with it (orbax's `metrics` item), so the best checkpoint is
still known after a restart. A step that cannot be read (a truncated file) is moved aside to
`<workdir>/checkpoints_corrupt/<step>` and the newest readable step is used instead
(`checkpoint_damage` tells damage from other errors).
"""

import concurrent.futures
import contextlib
import glob
import os
import shutil
import zlib

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ssd_jax import anchors
from ssd_jax import checkpoint_damage
from ssd_jax import errors
from ssd_jax import quiet  # pylint: disable=unused-import  (drops orbax's no-metrics warning)
from ssd_jax import report

STATE, META = 'state', 'meta'
CHECKSUMS = 'checksums'  # The key of the `meta` item that holds `checksums(state)`.


class ChecksumMismatch(Exception):
  """A restored array differs from the one saved (a flipped bit on disk): damage."""


def _crc32(array) -> str:
  data = np.ascontiguousarray(np.asarray(array))
  return f'{zlib.crc32(data.view(np.uint8).reshape(-1)):08x}'


def checksums(state) -> dict[str, str]:
  """{leaf path: CRC-32 of the array's bytes} for every array of `state`.

  Saved in the `meta` item and checked on restore: CRC-32 catches every flipped bit and
  every burst of up to 32 bits. Computed on host copies (zlib releases the GIL: one thread
  per core); at SSD300 size (200 MiB) ~0.05-0.1 s per save and per restore on 2 CPU cores,
  16% of a restore from the page cache (docs/results/checkpoints.md). The state is
  replicated: every process has every array.
  """
  paths_leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  paths = [jax.tree_util.keystr(path) for path, _ in paths_leaves]
  with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
    values = list(pool.map(_crc32, jax.device_get([x for _, x in paths_leaves])))
  return dict(zip(paths, values))


def verify_checksums(saved: dict | None, state, where: str) -> None:
  """Raises ChecksumMismatch naming the first array of `state` whose checksum differs from
  `saved` (a checkpoint written before checksums were recorded has none: nothing to check)."""
  if not saved:
    return
  for path, value in checksums(state).items():
    if path in saved and saved[path] != value:
      raise ChecksumMismatch(f'{where}: array {path} does not match the checksum saved with '
                             f'it (saved {saved[path]}, read {value}): changed on disk')


def model_signature(config: ml_collections.ConfigDict, priors: anchors.DefaultBoxes) -> dict:
  """What a checkpoint's parameters depend on; a restore checks it key by key.

  `priors` are the run's default boxes (`anchors.from_config`), computed once.
  """
  return {
      'model.arch': config.model.arch,
      'model.input_size': config.model.input_size,
      'model.width': config.model.width,
      'model.norm': config.model.norm,  # adds or removes parameters and batch_stats
      'model.num_sources': config.model.num_sources,
      'model.skip_sources': config.model.skip_sources,  # which layers feed the heads
      'model.vgg_convs': list(config.model.vgg_convs),
      'model.vgg_channels': list(config.model.vgg_channels),
      'model.fc_channels': config.model.fc_channels,
      'model.conv3_source': config.model.conv3_source,
      'anchors.boxes_per_cell': list(priors.boxes_per_cell),
      'input.class_names': list(config.input.class_names),
      # The state holds ema_params (averaged weights that evaluation uses) or not.
      'optimizer.ema': config.optimizer.ema_decay is not None,
  }


def check_signature(saved: dict, signature: dict, where: str) -> None:
  """Raises a UserError naming every key whose checkpoint value differs from `signature`."""
  diffs = [f'{k}: checkpoint has {saved[k]!r}, config has {v!r}' if k in saved else
           f'{k}: not in the checkpoint, config has {v!r}'
           for k, v in signature.items() if k not in saved or saved[k] != v]
  if any(d.startswith('optimizer.ema:') for d in diffs):
    diffs.append('EMA (config.optimizer.ema_decay) cannot be switched on or off in a run: keep '
                 "the run's setting, or start a new workdir with config.init_from=<this one>, "
                 'which loads the weights evaluation used')
  if diffs:
    raise errors.UserError(f'The checkpoint in {where} does not fit this config: ' +
                           '; '.join(diffs) + '.')


def _map(metrics: dict) -> float:
  return metrics['mAP']


def create_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  """Keeps the last `config.keep_checkpoints` and the best one by eval 'mAP'; async saves.

  `best_fn` is what makes orbax write a step's metrics to disk (its `_track_best`); the
  preservation policy alone only keeps them in memory, so a restarted run would have seen no
  metrics and deleted the best step at its next save.
  """
  policy = ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(n=config.keep_checkpoints),
      ocp.checkpoint_managers.BestN(get_metric_fn=_map, n=1,
                                    keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, best_fn=_map,
                                         best_mode='max', create=True,
                                         enable_async_checkpointing=True)
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
  while True:
    try:
      return ocp.CheckpointManager(directory, options=options, item_names=(STATE, META))
    except Exception:  # pylint: disable=broad-except  # It reads every step's metrics file.
      if not os.path.isdir(directory):
        raise
      steps = sorted(int(n) for n in os.listdir(directory) if n.isdigit())
      found = [(step, checkpoint_damage.json_damage(os.path.join(directory, str(step))))
               for step in steps]
      found = [(step, damage) for step, damage in found if damage is not None]
      if not found:
        raise
      step, (path, reason) = found[0]
      moved = checkpoint_damage.move_aside(directory, step)
      report.note(f'Checkpoint step {step} is unreadable: {path}: {reason}. Moved it to '
                  f'{moved}.')


def _raise_if_disk_full(manager: ocp.CheckpointManager, step: int, error: BaseException):
  """A full disk during a save: removes the partial step folders, raises a UserError."""
  folder = os.path.join(manager.directory, str(step))
  if errors.find_disk_full(error) is None:
    return
  with contextlib.suppress(Exception):  # Let a save still in flight end (or fail) first.
    manager.wait_until_finished()
  if jax.process_index() == 0:  # No save is running any more: every partial folder is ours.
    for partial in glob.glob(os.path.join(manager.directory, '*.orbax-checkpoint-tmp*')):
      shutil.rmtree(partial, ignore_errors=True)
  raise errors.disk_full(folder) from error


def save(manager: ocp.CheckpointManager, step: int, state, signature: dict,
         metrics=None) -> None:
  """Starts an async save of `state` with its `model_signature` (+ eval `metrics`)."""
  meta = {**signature, CHECKSUMS: checksums(state)}
  try:
    manager.save(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardSave(state),
        META: ocp.args.JsonSave(meta)}), metrics=metrics)
  except Exception as e:  # pylint: disable=broad-except
    _raise_if_disk_full(manager, step, e)
    raise


def wait_until_finished(manager: ocp.CheckpointManager) -> None:
  """Waits for the last async save; a full disk raises a UserError naming the step folder."""
  step = manager.latest_step()
  try:
    manager.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    _raise_if_disk_full(manager, step, e)
    raise


def last_complete_step(manager: ocp.CheckpointManager) -> int | None:
  """The newest step whose save has finished (waits for a save in flight), or None."""
  with contextlib.suppress(Exception):  # A failed save leaves the older steps.
    manager.wait_until_finished()
  manager.reload()
  return manager.latest_step()


def remove_unfinished(workdir: str) -> None:
  """Removes the temporary folders of saves that never finished (`<step>.orbax-checkpoint-
  tmp*`: a run killed or stopped by a second signal during a save), saying so in one line.

  Called by a training run, which holds the workdir lock: no other save can be in flight.
  Process 0 removes them; they are never read as checkpoints either way.
  """
  if jax.process_index() != 0:
    return
  for partial in sorted(glob.glob(os.path.join(workdir, 'checkpoints',
                                               '*.orbax-checkpoint-tmp*'))):
    shutil.rmtree(partial, ignore_errors=True)
    report.note(f'Removed {partial}: the unfinished save of an interrupted run (the last '
                'complete checkpoint is used).')


def _restore_step(manager: ocp.CheckpointManager, state, signature: dict, step: int):
  meta = manager.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]
  check_signature(meta, signature, f'{manager.directory} (step {step})')
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored = manager.restore(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardRestore(abstract)}))[STATE]
  verify_checksums(meta.get(CHECKSUMS), restored,
                   os.path.join(str(manager.directory), str(step), STATE))
  return restored


def saving_now(manager: ocp.CheckpointManager) -> errors.UserError:
  """The one-line error of a reader that lost the race with a training run's saves."""
  return errors.UserError(f'training is saving checkpoints to {manager.directory}; retry.')


def restore(manager: ocp.CheckpointManager, state, signature: dict, step: int | None = None,
            *, move_damaged: bool = True, writer_running: bool = False):
  """Restores `step` (default: the latest) into the structure and shardings of `state`.

  The checkpoint's `model_signature` must equal `signature` (else a UserError naming the keys).

  Returns (state, step), or (state, None) unchanged when there is no checkpoint. A damaged
  latest step (`checkpoint_damage.find_damage`) is moved aside and the next older one tried,
  saying so in one line; with `move_damaged` False (a reader such as `ssd_jax.detect`, which
  writes nothing in the workdir) it is left in place and skipped. A damaged requested `step`
  is a UserError naming it and its damaged file or item folder.

  A reader (`move_damaged` False) may race a training run: a step it lists can be deleted by
  retention while it reads it. A step that is gone after a failed read is not damage: the
  newest complete step is tried once more (with `writer_running`, a training run holds the
  workdir, any failed step counts so); a second failure is the one-line `saving_now` error.
  """
  if step is not None and step not in manager.all_steps():
    raise errors.UserError(f'No checkpoint for step {step} in {manager.directory}; saved '
                           f'steps: {sorted(manager.all_steps())}.')
  skipped, retried = set(), False
  while True:
    left = [s for s in manager.all_steps() if s not in skipped]
    current = (max(left) if left else None) if step is None else step
    if current is None:
      return state, None
    step_dir = os.path.join(str(manager.directory), str(current))
    try:
      return _restore_step(manager, state, signature, current), current
    except errors.UserError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      if isinstance(e, ChecksumMismatch):
        where, _, why = str(e).partition(': ')
        damage = (where, why)
      else:
        damage = checkpoint_damage.find_damage(step_dir, array_items=(STATE,))
      if not move_damaged:
        manager.reload()
        gone = not os.path.isdir(step_dir) or current not in manager.all_steps()
        if gone or (writer_running and damage is not None):
          if retried or step is not None:
            raise saving_now(manager) from e
          retried = True
          if gone:
            report.note(f'Checkpoint step {current} was deleted while it was read (training '
                        'is saving checkpoints); using the newest complete step.')
            continue
      if damage is None:  # The step reads back: the error is not damage (e.g. a tree misfit).
        raise
      problem = f'Checkpoint step {current} is unreadable: {damage[0]}: {damage[1]}'
      if step is not None:
        raise errors.UserError(f'{problem}. Pick another --config.eval_step (saved steps: '
                               f'{sorted(manager.all_steps())}).') from e
    if move_damaged:
      moved = checkpoint_damage.move_aside(str(manager.directory), current)
      manager.reload()
      problem += f'. Moved it to {moved}'
    else:
      skipped.add(current)
      problem += '. Left it in place'
    older = max([s for s in manager.all_steps() if s not in skipped], default=None)
    report.note(f'{problem}; ' +
                (f'using step {older}.' if older is not None else 'no older checkpoint left.'))


def load_params(path: str):
  """Parameters of a checkpoint folder (a step folder or a run's `checkpoints/` folder).

  Used by `config.init_from` to start from pretrained weights (`pretrained.select` takes the
  chosen parts over). A run trained with EMA gives its averaged params (what it evaluated).
  """
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f'config.init_from: no such checkpoint folder: {path}')
  if os.path.isdir(os.path.join(path, STATE)):
    state_dir = os.path.join(path, STATE)
  else:
    manager = ocp.CheckpointManager(path, item_names=(STATE, META))
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f'config.init_from: no checkpoint in {path}')
    state_dir = os.path.join(path, str(step), STATE)
  tree = ocp.StandardCheckpointer().restore(state_dir)
  if not isinstance(tree, dict) or 'params' not in tree:
    return tree
  return tree.get('ema_params') or tree['params']
