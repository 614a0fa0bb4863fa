"""Training and evaluation steps: the state, the optimizer, one jitted train/eval step.

The whole train step (forward, matching, MultiBox loss, backward, optimizer) is one compiled
program. Data parallelism: the batch is sharded over a 1-D device `Mesh` on axis 'data' and the
state is replicated; `jax.jit` inserts the gradient all-reduce (this replaces `pmap`). The loss
is normalized by the number of positives of the whole global batch.
"""

import functools
from typing import Any

from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssd_jax import anchors
from ssd_jax import losses
from ssd_jax import models
from ssd_jax import postprocess

TRAIN_KEYS = ('image', 'boxes', 'labels', 'mask')  # what the train step reads from a batch


class TrainState(train_state.TrainState):
  pass


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warmup, then piecewise x0.1 at `boundaries` (the paper) or cosine decay."""
  opt = config.optimizer
  base = opt.learning_rate
  warmup = optax.linear_schedule(base * 0.01 if opt.warmup_steps else base, base,
                                 max(opt.warmup_steps, 1))
  if opt.schedule == 'piecewise':
    after = optax.piecewise_constant_schedule(
        base, {int(b) - opt.warmup_steps: 0.1 for b in opt.boundaries})
  elif opt.schedule == 'cosine':
    after = optax.cosine_decay_schedule(base, max(config.num_train_steps - opt.warmup_steps, 1))
  else:
    raise ValueError(f"optimizer.schedule={opt.schedule!r}; expected 'piecewise' or 'cosine'.")
  return optax.join_schedules([warmup, after], [opt.warmup_steps])


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """SGD with momentum and L2 weight decay on kernels (not biases or scales), as Caffe SSD."""
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
    raise ValueError(f"optimizer.name={opt.name!r}; expected 'sgd' or 'adamw'.")
  return optax.chain(*parts)


def create_train_state(config: ml_collections.ConfigDict, rng: jax.Array) -> TrainState:
  """Initializes the model parameters and the optimizer state."""
  model = models.create_model(config)
  size = config.model.input_size
  variables = jax.jit(model.init)(rng, jnp.zeros((1, size, size, 3), jnp.float32))
  return TrainState.create(apply_fn=model.apply, params=variables['params'],
                           tx=create_optimizer(config))


def train_step(state: TrainState, batch: dict[str, Any], priors: jax.Array,
               config: ml_collections.ConfigDict) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a (global) batch; returns the new state and scalar metrics."""

  def loss_fn(params):
    loc, conf = state.apply_fn({'params': params}, batch['image'])
    return losses.ssd_loss(loc, conf, batch, priors, config.loss)

  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads)
  metrics = {'loss': loss, **aux, 'grad_norm': optax.global_norm(grads),
             'learning_rate': learning_rate_schedule(config)(state.step)}
  return new_state, metrics


def eval_step(params, batch: dict[str, Any], priors: jax.Array, apply_fn,
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Forward + detection output for an evaluation batch (fixed-size detections)."""
  loc, conf = apply_fn({'params': params}, batch['image'])
  return postprocess.detect_from_config(loc, conf, priors, config)


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """1-D mesh over all (global) devices with axis name 'data'."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(np.asarray(devices), ('data',))


def compile_steps(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                  apply_fn) -> tuple[Any, Any, jax.Array]:
  """Jitted (train_step, eval_step) with batch sharded over 'data' and state replicated."""
  priors = jnp.asarray(anchors.default_boxes(config))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  train = jax.jit(functools.partial(train_step, priors=priors, config=config),
                  in_shardings=(replicated, sharded), out_shardings=(replicated, replicated),
                  donate_argnums=0)
  evaluate = jax.jit(functools.partial(eval_step, priors=priors, apply_fn=apply_fn,
                                       config=config),
                     in_shardings=(replicated, sharded), out_shardings=sharded)
  return train, evaluate, priors
