"""Training and evaluation steps: the state, the optimizer, one jitted train/eval step.

The whole train step (forward, matching, MultiBox loss, backward, optimizer) is one compiled
program. Data parallelism: the batch is sharded over a 1-D device `Mesh` on axis 'data' and the
state is replicated; `jax.jit` inserts the gradient all-reduce (this replaces `pmap`). The loss
is normalized by the number of positives of the whole global batch.
"""

import contextlib
import dataclasses
import functools
import os
import time
from typing import Any

from flax import struct
from flax.training import train_state
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssd_jax import anchors
from ssd_jax import checkpoints
from ssd_jax import config_keys
from ssd_jax import describe
from ssd_jax import errors
from ssd_jax import evaluation
from ssd_jax import losses
from ssd_jax import metric_writer
from ssd_jax import models
from ssd_jax import postprocess
from ssd_jax import preemption
from ssd_jax import pretrained
from ssd_jax import report
from ssd_jax import run_files
from ssd_jax import stack
from ssd_jax import visualize
from ssd_jax import workdir as workdir_lib
from ssd_jax.data import sources
from ssd_jax.data.info import DatasetInfo
from ssd_jax.evaluation import label_spaces
from ssd_jax.evaluation import plots
from ssd_jax.evaluation import scored_data

stack.check()  # A stack without an API used below fails here, in one line.

STEP_KEYS = ('image', 'boxes', 'labels', 'mask')  # What the train step reads from a batch.


class TrainState(train_state.TrainState):
  batch_stats: Any = None  # BatchNorm running statistics (model.norm='batch'), else {}.
  # Moving average of `params` (config.optimizer.ema_decay set), else {}.
  ema_params: Any = struct.field(default_factory=dict)

  @property
  def variables(self) -> dict:
    """What `apply_fn` takes for inference: the averaged params when EMA is on."""
    return {'params': self.ema_params or self.params, 'batch_stats': self.batch_stats}


def ema_decay_at(decay: float, step: jax.Array) -> jax.Array:
  """The EMA decay for the update after `step` earlier updates: min(decay, (1+step)/(10+step)).

  The warm-up (tf.train.ExponentialMovingAverage's num_updates rule) keeps the first
  averages from being dominated by the random init: 0.1 at step 0, 0.5 at step 8.
  """
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warmup, then piecewise x0.1 at `boundaries` (the paper), or a cosine or linear
  decay to zero at `num_train_steps`."""
  opt = config.optimizer
  base = opt.learning_rate
  warmup = optax.linear_schedule(base * 0.01 if opt.warmup_steps else base, base,
                                 max(opt.warmup_steps, 1))
  if opt.schedule == 'piecewise':
    after = optax.piecewise_constant_schedule(
        base, {int(b) - opt.warmup_steps: 0.1 for b in opt.boundaries})
  elif opt.schedule == 'cosine':
    after = optax.cosine_decay_schedule(base, max(config.num_train_steps - opt.warmup_steps, 1))
  elif opt.schedule == 'linear':
    after = optax.linear_schedule(base, 0.0, max(config.num_train_steps - opt.warmup_steps, 1))
  else:
    raise errors.UserError(f"optimizer.schedule={opt.schedule!r}; expected 'piecewise', "
                           "'cosine' or 'linear'.")
  return optax.join_schedules([warmup, after], [opt.warmup_steps])


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """SGD + momentum with L2 weight decay (the paper), or AdamW; decay on kernels only.

  Biases, norm scales and the L2Norm scale are not decayed (Caffe SSD's decay_mult 0).
  """
  opt = config.optimizer
  schedule = learning_rate_schedule(config)
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
  parts = []
  if opt.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(opt.grad_clip_norm))
  if opt.name == 'sgd':
    parts += [optax.add_decayed_weights(opt.weight_decay, mask=decay_mask),
              optax.sgd(schedule, momentum=opt.momentum)]
  elif opt.name == 'adamw':
    parts.append(optax.adamw(schedule, weight_decay=opt.weight_decay, mask=decay_mask))
  else:
    raise errors.UserError(f"optimizer.name={opt.name!r}; expected 'sgd' or 'adamw'.")
  return optax.chain(*parts)


def create_train_state(config: ml_collections.ConfigDict, model: models.SSD, rng: jax.Array,
                       mesh: jax.sharding.Mesh | None = None) -> TrainState:
  """Initializes parameters and optimizer state (replicated over `mesh` when given)."""
  tx = create_optimizer(config)
  size = config.model.input_size

  def init(rng):
    variables = model.init(rng, jnp.zeros((1, size, size, 3), jnp.float32))
    params = variables['params']
    ema = {} if config.optimizer.ema_decay is None else jax.tree.map(jnp.copy, params)
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                             batch_stats=variables.get('batch_stats', {}), ema_params=ema)

  replicated = None if mesh is None else jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec())
  # A program that runs once: on CPU, LLVM's optimizations of the random initializers were
  # ~20 s of its ~22 s compile (shapes config); without them it compiles in ~3 s and gives
  # the same values. (Only a top-level jit takes options: not under eval_shape or jit.)
  options = None
  if jax.default_backend() == 'cpu' and not isinstance(rng, jax.core.Tracer):
    options = {'xla_backend_optimization_level': 0}
  return jax.jit(init, out_shardings=replicated, compiler_options=options)(rng)


def train_step(state: TrainState, batch: dict[str, Any], priors: jax.Array,
               config: ml_collections.ConfigDict) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a (global) batch; returns the new state and scalar metrics."""

  def loss_fn(params):
    (loc, conf), updates = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, batch['image'], train=True,
        mutable=['batch_stats'])
    loss, aux = losses.ssd_loss(loc, conf, batch, priors, config.loss)
    return loss, (aux, updates.get('batch_stats', {}))

  (loss, (aux, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  if config.optimizer.ema_decay is not None:  # After the optimizer step, on the new params.
    d = ema_decay_at(config.optimizer.ema_decay, state.step)
    new_state = new_state.replace(ema_params=jax.tree.map(
        lambda e, p: d * e + (1.0 - d) * p, state.ema_params, new_state.params))
  metrics = {'loss': loss, **aux, 'grad_norm': optax.tree.norm(grads),
             'learning_rate': learning_rate_schedule(config)(state.step)}
  return new_state, metrics


def eval_step(variables, batch: dict[str, Any], priors: jax.Array, apply_fn,
              config: ml_collections.ConfigDict, scales=None) -> dict[str, jax.Array]:
  """Forward + detection output for an evaluation batch (fixed-size detections).

  `scales` (multi-scale testing, `anchors.EvalScales.scales`): for each (size,
  first prior, end prior) the model runs on the batch resized to size x size and keeps those
  priors' predictions; `priors` are then the kept default boxes of all scales, concatenated.
  None: one forward pass on the batch as it is.
  """
  loc, conf = eval_heads(variables, batch['image'], apply_fn, scales)
  return postprocess.detect_from_config(loc, conf, priors, config)


def eval_heads(variables, images: jax.Array, apply_fn, scales=None):
  """The heads' outputs that `eval_step` post-processes: loc [B, P, 4], logits [B, P, C + 1]
  (with `scales`, each scale's kept priors, concatenated)."""
  if scales is None:
    return apply_fn(variables, images)
  locs, confs = [], []
  for size, start, end in scales:
    x = images
    if size != images.shape[1]:
      x = jax.image.resize(images, (images.shape[0], size, size, images.shape[3]), 'linear')
    loc, conf = apply_fn(variables, x)
    locs.append(loc[:, start:end])
    confs.append(conf[:, start:end])
  return jnp.concatenate(locs, axis=1), jnp.concatenate(confs, axis=1)


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """1-D mesh over all (global) devices with axis name 'data'."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(np.asarray(devices), ('data',))


def check_batch_sizes(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
  """Raises a one-line UserError unless the global batch sizes split evenly over the devices."""
  devices = mesh.devices.size
  for key in ('batch_size', 'eval_batch_size'):
    size = config.input[key]
    if size < 1 or size % devices:
      raise errors.UserError(
          f'config.input.{key}={size} must be a positive multiple of the {devices} devices '
          f'(the global batch is split evenly over them); e.g. {max(1, size // devices) * devices}.')


def eval_step_fn(config: ml_collections.ConfigDict, apply_fn, priors: anchors.DefaultBoxes):
  """`eval_step` with its arguments bound: (variables, batch) -> detections.

  `priors` are the run's default boxes (`anchors.from_config`): their boxes, or with
  `config.eval.scales` set, the boxes and scales of `priors.eval_scales`.
  """
  boxes, scales = priors.boxes, None
  if priors.eval_scales is not None:
    boxes, scales = priors.eval_scales.boxes, priors.eval_scales.scales
  return functools.partial(eval_step, priors=jnp.asarray(boxes), apply_fn=apply_fn,
                           config=config, scales=scales)


def compile_steps(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, apply_fn,
                  priors: anchors.DefaultBoxes) -> tuple[Any, Any]:
  """Jitted (train_step, eval_step) with batch sharded over 'data' and state replicated.

  `priors` are the run's default boxes (`anchors.from_config`), computed once.
  """
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  train_fn = jax.jit(functools.partial(train_step, priors=jnp.asarray(priors.boxes),
                                       config=config),
                     in_shardings=(replicated, sharded), out_shardings=(replicated, replicated),
                     donate_argnums=0)
  eval_fn = jax.jit(eval_step_fn(config, apply_fn, priors),
                    in_shardings=(replicated, sharded), out_shardings=sharded)
  return train_fn, eval_fn


# --- The loop --------------------------------------------------------------------------------


def global_batch(local: dict[str, np.ndarray], mesh: jax.sharding.Mesh, keys) -> dict:
  """Assembles each process's part of a batch into global arrays sharded over 'data'."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k]))
          for k in keys}


def create_evaluator(config: ml_collections.ConfigDict, info):
  """The evaluator for `config.eval.metric` ('voc07', 'voc' or 'coco')."""
  metric = config.eval.metric
  if metric == 'coco':
    return evaluation.CocoEvaluator(info.class_names, info.category_ids)
  if metric in ('voc07', 'voc'):
    return evaluation.VocEvaluator(info.class_names, use_07_metric=metric == 'voc07')
  raise errors.UserError(f"eval.metric={metric!r}; expected 'voc07', 'voc' or 'coco'.")


def score_split(config, variables, eval_fn, mesh, info, *, num_images_to_draw=0,
                evaluator=None):
  """Runs the eval split through `eval_fn`; returns (EvalResult, drawn preview images).

  The result's `data` records what was scored (`run_files.data_record`: data set, split,
  number of images, sha256 of the ground truth).

  `evaluator` (default: `create_evaluator`'s) receives every batch; a caller that passes one
  can read what it accumulated afterwards.

  Every process reads its own part of the split; batch and detections are gathered so that
  every process scores the whole split (only process 0 writes anything). Scored in the data
  set's labels: detections are mapped to them by category id (evaluation/label_spaces.py).
  """
  if evaluator is None:
    evaluator = create_evaluator(config, info)
  fingerprint = scored_data.Fingerprint()
  label_map = label_spaces.detection_label_map(config, info, training=False)
  previews = []
  keys = ('boxes', 'labels', 'mask', 'difficult', 'crowd', 'orig_size', 'example_mask')
  for local in sources.eval_batches(config):
    detections = eval_fn(variables, global_batch(local, mesh, ('image',)))
    host = {k: local[k] for k in keys}
    host['image_id'] = scored_data.encode_ids(local['image_id'])
    host, detections = multihost_utils.process_allgather((host, detections), tiled=True)
    host = {k: np.asarray(v) for k, v in host.items()}
    host['image_id'] = scored_data.decode_ids(host['image_id'])
    fingerprint.add_batch(host)
    detections = label_spaces.map_detections(
        {k: np.asarray(v) for k, v in detections.items()}, label_map)
    evaluator.add_batch(host, detections)
    for i in range(min(num_images_to_draw - len(previews), len(local['image']))):
      image = visualize.denormalize(local['image'][i], config.input.mean_rgb,
                                    config.input.std_rgb)
      previews.append(visualize.draw_example(image, local['boxes'],
                                             local['mask'], detections, i, info.class_names))
  result = evaluator.evaluate()
  result.data = run_files.data_record(config, info, fingerprint)
  return result, previews


def initialize_from(state: TrainState, config: ml_collections.ConfigDict,
                    mesh: jax.sharding.Mesh) -> TrainState:
  """`state` with `config.init_from` loaded (`pretrained.initialize`), replicated over `mesh`.

  With EMA on, the average starts at the loaded params too (not at the random init).
  """
  params = jax.device_put(pretrained.initialize(state.params, config),
                          jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  return state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params)
                       if state.ema_params else {})


def _check_finite(pending: list, kept=lambda: None, init_from: str = '') -> None:
  """Raises FloatingPointError naming the first step whose loss was NaN or inf.

  `kept()` gives the checkpoint step that stays (called only then: it may wait for a save),
  None when there is none; `init_from` is config.init_from. The loss of step 1 is that of the
  initial weights, before any update: the message blames them or the data, not the learning
  rate.
  """
  for step, loss in pending:
    if np.isfinite(loss):
      continue
    step_kept = kept()
    checkpoint = ('no checkpoint was saved' if step_kept is None else
                  f'the checkpoint of step {step_kept} is kept (rerunning resumes from it)')
    if step == 1:
      cause = (f'the weights of config.init_from={init_from} (non-finite values?) or the '
               'input data' if init_from else 'the input data (boxes, images) or the model '
               'settings')
      advice = (f'The loss of step 1 is that of the initial weights, before any update (not '
                f'the learning rate): check {cause}.')
    else:
      advice = ('Try a lower optimizer.learning_rate, a longer warmup or '
                'optimizer.grad_clip_norm.')
    raise FloatingPointError(f'Loss is {loss} at step {step}. Stopping; {checkpoint}. {advice}')


@dataclasses.dataclass(frozen=True)
class _Setup:
  """What training and evaluation share, built once per run by `_setup`."""
  mesh: jax.sharding.Mesh
  info: DatasetInfo
  state: TrainState
  train_fn: Any
  eval_fn: Any
  manager: Any  # orbax CheckpointManager
  signature: dict  # checkpoints.model_signature: what a restore must agree with.


def _setup(config: ml_collections.ConfigDict, workdir: str, training: bool = True) -> _Setup:
  """Data set info (checked against the config's labels), default boxes (once), model, state,
  compiled steps, checkpoint manager."""
  mesh = make_mesh()
  check_batch_sizes(config, mesh)
  info = sources.dataset_info(config)  # (Importing the tf.data pipeline keeps TF off GPUs.)
  label_spaces.detection_label_map(config, info, training)  # Raises on a mismatch.
  # Computed once; the model, steps and signature get them.
  priors = models.default_boxes(config)
  report.note(describe.format_summary(describe.describe(config, priors)))
  model = models.create_model(config.model, priors.boxes_per_cell, len(config.input.class_names))
  state = create_train_state(config, model, jax.random.PRNGKey(config.seed), mesh)
  train_fn, eval_fn = compile_steps(config, mesh, state.apply_fn, priors)
  return _Setup(mesh=mesh, info=info, state=state, train_fn=train_fn, eval_fn=eval_fn,
                manager=checkpoints.create_manager(workdir, config),
                signature=checkpoints.model_signature(config, priors))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config.num_train_steps` steps (resuming from `workdir`), evaluating periodically.

  Holds the workdir lock for the run. Returns the metrics of the final evaluation.
  SIGTERM or SIGINT: saves the step it is in and raises `preemption.Stopped` (see there).
  """
  config_keys.check_settings(config, training=True)
  workdir_lib.check(workdir, 'train')
  created = not os.path.exists(workdir)
  os.makedirs(workdir, exist_ok=True)
  try:
    with workdir_lib.lock(workdir, 'train') as lock_path:
      release = None if lock_path is None else functools.partial(workdir_lib.release, lock_path)
      with preemption.Stopper(workdir, release) as stopper:
        return _train_and_evaluate(config, workdir, stopper)
  except BaseException:
    if created:  # A run that stopped before writing anything (a config error) leaves no folder.
      with contextlib.suppress(OSError):  # Not empty: it wrote something, which stays.
        os.rmdir(workdir)
    raise


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        stopper: preemption.Stopper) -> dict:
  started = time.perf_counter()
  checkpoints.remove_unfinished(workdir)
  run = _setup(config, workdir)  # A config error stops here, before anything is written.
  writer = metric_writer.create_writer(workdir, just_logging=jax.process_index() > 0)
  mesh, info, train_fn, eval_fn, manager = (run.mesh, run.info, run.train_fn, run.eval_fn,
                                            run.manager)
  state, start_step = checkpoints.restore(manager, run.state, run.signature)
  run_files.write_config(workdir, config, start_step)
  if start_step is not None:
    report.note(f'Resuming from the checkpoint of step {start_step} in {workdir}.')
  # Wall time of earlier (resumed) runs: that of the last evaluation up to start_step.
  eval_dir = os.path.join(workdir, 'eval')
  started -= max([t for s, t, _ in plots.read_curve(eval_dir) if s <= (start_step or 0) and t]
                 or [0.0])
  if start_step is None:
    start_step = 0
    if config.init_from:
      state = initialize_from(state, config, mesh)

  train_iter = sources.train_batches(config, start_step=start_step)
  progress = metric_writer.create_progress(config.num_train_steps, writer)
  total = config.num_train_steps
  metrics = None
  pending, last_log = [], (start_step, time.perf_counter())
  for step in range(start_step + 1, total + 1):
    with jax.profiler.StepTraceAnnotation('train', step_num=step):
      batch = global_batch(next(train_iter), mesh, STEP_KEYS)
      state, step_metrics = train_fn(state, batch)
    pending.append((step, step_metrics))
    progress(step)
    is_eval = step % config.eval.every_steps == 0 or step == total
    is_save = is_eval or step % config.checkpoint_every_steps == 0
    stop = step < total and stopper.should_stop(step, manager)  # (Every process, every step.)
    if step % config.log_every_steps == 0 or is_save or stop:
      fetched = jax.device_get([m for _, m in pending])
      _check_finite([(s, float(m['loss'])) for (s, _), m in zip(pending, fetched)],
                    functools.partial(checkpoints.last_complete_step, manager),
                    config.init_from)
      seconds = time.perf_counter() - last_log[1]
      scalars = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
      steps_per_s = (step - last_log[0]) / seconds
      scalars['images_per_s'] = steps_per_s * config.input.batch_size
      writer.write_scalars(step, {f'train/{k}': v for k, v in scalars.items()})
      report.note(f"step {step}/{total}: loss {scalars['loss']:.4f} (loc "
                  f"{scalars['loc_loss']:.4f}, conf {scalars['conf_loss']:.4f}), lr "
                  f"{scalars['learning_rate']:.2e}, {scalars['images_per_s']:.1f} images/s, "
                  f"ETA {(total - step) / steps_per_s / 60:.1f} min")
      pending, last_log = [], (step, time.perf_counter())
    if is_eval:
      eval_started = time.perf_counter()
      result, previews = score_split(config, state.variables, eval_fn, mesh, info,
                                     num_images_to_draw=4)
      report.note(f'Evaluated step {step} in {time.perf_counter() - eval_started:.1f} s.')
      metrics = result.metrics
      run_files.write_eval(workdir, step, result, writer, config.eval.metric,
                           elapsed_s=time.perf_counter() - started)
      if jax.process_index() == 0:
        plots.save_learning_curve(eval_dir, os.path.join(workdir, 'learning_curve.png'))
        if previews:
          writer.write_images(step, {'eval/detections': np.stack(previews)})
    if is_save or stop:
      checkpoints.save(manager, step, state, run.signature,
                       metrics={'mAP': metrics['mAP']} if is_eval else None)
      last_log = (step, time.perf_counter())  # The next images/s leaves out eval and save.
    if stop:
      checkpoints.wait_until_finished(manager)
      writer.flush()
      raise stopper.stopped(step)
  checkpoints.wait_until_finished(manager)
  writer.flush()
  return metrics


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Restores `config.eval_step` (default: the latest) from `workdir` and evaluates it.

  The result goes to `eval/step_<N>.json` when `config` evaluates the run's own validation
  data (that of its config.json), else to `eval/<tag>/step_<N>.json` (`run_files`).
  A missing or empty `workdir` is a UserError and creates nothing; holds the workdir lock.
  """
  config_keys.check_settings(config, training=False)
  workdir_lib.check(workdir, 'eval')
  with workdir_lib.lock(workdir, 'eval'):
    return _evaluate_checkpoint(config, workdir)


def _evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
  run = _setup(config, workdir, training=False)
  writer = metric_writer.create_writer(workdir, just_logging=jax.process_index() > 0)
  state, step = checkpoints.restore(run.manager, run.state, run.signature, config.eval_step)
  if step is None:
    raise errors.UserError(f'No readable checkpoint left to evaluate in {run.manager.directory}.')
  own = run_files.is_own_data(workdir, config)
  result, _ = score_split(config, state.variables, run.eval_fn, run.mesh, run.info)
  run_files.write_eval(workdir, step, result, writer, config.eval.metric, own=own)
  writer.flush()
  return result.metrics
