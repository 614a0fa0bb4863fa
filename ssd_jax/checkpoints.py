"""Orbax checkpoints: periodic saves, keep the last N plus the best by eval mAP, resume.

Each checkpoint holds the train state (params, optimizer state, step) and a small JSON
`meta` item with what must agree for a restore to make sense (model, default boxes, classes).
Restoring into a config that disagrees fails with a message naming each mismatching key.
"""

import os

import jax
import ml_collections
import orbax.checkpoint as ocp

from ssd_jax import anchors

STATE, META = 'state', 'meta'


def model_signature(config: ml_collections.ConfigDict) -> dict:
  """What a checkpoint's parameters depend on; a restore checks it key by key."""
  return {
      'model.arch': config.model.arch,
      'model.input_size': config.model.input_size,
      'model.width': config.model.width,
      'model.norm': config.model.norm,  # adds or removes parameters and batch_stats
      'model.num_classes': config.model.num_classes,
      'model.num_sources': config.model.num_sources,
      'anchors.boxes_per_cell': anchors.boxes_per_cell(config),
      'input.class_names': list(config.input.class_names),
  }


def check_signature(saved: dict, config: ml_collections.ConfigDict, where: str) -> None:
  """Raises ValueError naming every key whose checkpoint value differs from the config's."""
  current = model_signature(config)
  diffs = [f'{k}: checkpoint has {saved.get(k)!r}, config has {v!r}'
           for k, v in current.items() if saved.get(k) != v]
  if diffs:
    raise ValueError(f'The checkpoint in {where} does not fit this config:\n  ' +
                     '\n  '.join(diffs))


def create_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  """Keeps the last `config.keep_checkpoints` and the best one by eval 'mAP'; async saves."""
  policy = ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(n=config.keep_checkpoints),
      ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: m['mAP'], n=1,
                                    keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options, item_names=(STATE, META))


def save(manager: ocp.CheckpointManager, step: int, state, config, metrics=None) -> None:
  manager.save(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardSave(state),
      META: ocp.args.JsonSave(model_signature(config))}), metrics=metrics)


def restore(manager: ocp.CheckpointManager, state, config, step: int | None = None):
  """Restores `step` (default: the latest) into the structure and shardings of `state`.

  Returns (state, step), or (state, None) unchanged when there is no checkpoint.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    return state, None
  if step not in manager.all_steps():
    raise ValueError(f'No checkpoint for step {step} in {manager.directory}; saved steps: '
                     f'{sorted(manager.all_steps())}.')
  meta = manager.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]
  check_signature(meta, config, f'{manager.directory} (step {step})')
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored = manager.restore(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardRestore(abstract)}))[STATE]
  return restored, step


def load_params(path: str):
  """Parameters of a checkpoint folder (a step folder or a run's `checkpoints/` folder).

  Used by `config.init_from` to start from pretrained weights: every array whose path exists in
  the model with the same shape is taken over (see `merge_params`).
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
  return tree['params'] if isinstance(tree, dict) and 'params' in tree else tree


def merge_params(params, pretrained, prefix=()):
  """Replaces leaves of `params` with same-path, same-shape leaves of `pretrained`.

  Returns (merged params, list of loaded paths). A same-path leaf with another shape is an
  error naming it (the usual sign of a width or class-count mismatch).
  """
  loaded = []
  if not isinstance(params, dict):
    if tuple(pretrained.shape) != tuple(params.shape):
      raise ValueError(f"config.init_from: {'/'.join(prefix)} has shape {pretrained.shape} in "
                       f'the checkpoint but {params.shape} in the model.')
    return jax.numpy.asarray(pretrained, params.dtype), ['/'.join(prefix)]
  merged = {}
  for key, value in params.items():
    if isinstance(pretrained, dict) and key in pretrained:
      merged[key], sub = merge_params(value, pretrained[key], prefix + (key,))
      loaded += sub
    else:
      merged[key] = value
  return merged, loaded
