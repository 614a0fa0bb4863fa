"""model.dtype='bfloat16': convolutions in bf16; params, optimizer state, loss, matcher,
decoding and NMS in float32; the loss, gradients and a short training run match float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import smoke
from ssd_jax import losses
from ssd_jax import models
from ssd_jax import postprocess
from ssd_jax import train
from ssd_jax.data import shapes_draw
from ssd_jax.data import synthetic


def _config(dtype):
  config = smoke.get_config()
  config.model.dtype = dtype
  return config


def _shapes_batch(config, batch_size=4):
  """A batch of drawn shapes images (the smoke config's data, drawn directly), normalized."""
  size, max_boxes = config.model.input_size, config.input.max_boxes
  batch = {'image': [], 'boxes': np.zeros((batch_size, max_boxes, 4), np.float32),
           'labels': np.zeros((batch_size, max_boxes), np.int32),
           'mask': np.zeros((batch_size, max_boxes), bool)}
  for i in range(batch_size):
    image, objects = shapes_draw.draw_example(0, i, size)
    batch['image'].append((image - np.asarray(config.input.mean_rgb, np.float32)) /
                          np.asarray(config.input.std_rgb, np.float32))
    n = min(len(objects['label']), max_boxes)
    batch['boxes'][i, :n] = objects['bbox'][:n]
    batch['labels'][i, :n] = objects['label'][:n] + 1
    batch['mask'][i, :n] = True
  batch['image'] = np.stack(batch['image']).astype(np.float32)
  return batch


def _equations(jaxpr):
  """Every equation of `jaxpr` and of the jaxprs inside its equations (custom_vjp, pjit)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        sub = getattr(sub, 'jaxpr', sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(sub, 'eqns'):
          yield from _equations(sub)


def _setup(dtype):
  config = _config(dtype)
  priors = models.default_boxes(config)
  model = models.create_model(config.model, priors.boxes_per_cell, len(config.input.class_names))
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 96, 96, 3)))['params']
  return config, priors, model, params


def _loss_and_grads(dtype, batch):
  config, priors, model, params = _setup(dtype)
  boxes = jnp.asarray(priors.boxes)

  def loss_fn(p):
    loc, conf = model.apply({'params': p}, batch['image'])
    return losses.ssd_loss(loc, conf, batch, boxes, config.loss)[0]

  return jax.jit(jax.value_and_grad(loss_fn))(params)


@pytest.mark.slow  # Heavy compiles: the full suite only (quick tier ~ 2 min).
def test_convolutions_in_bf16_the_rest_in_float32():
  config, priors, model, params = _setup('bfloat16')
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  images = jnp.asarray(_shapes_batch(config)['image'])
  jaxpr = jax.make_jaxpr(lambda p, x: model.apply({'params': p}, x))(params, images)
  convs = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name == 'conv_general_dilated']
  assert len(convs) >= 10
  assert {str(v.aval.dtype) for e in convs for v in e.invars} == {'bfloat16'}
  loc, conf = model.apply({'params': params}, images)
  assert loc.dtype == conf.dtype == jnp.float32  # The loss and matcher get float32.
  detections = postprocess.detect_from_config(loc, conf, jnp.asarray(priors.boxes), config)
  assert detections['boxes'].dtype == detections['scores'].dtype == jnp.float32
  # A train step keeps params and optimizer state in float32.
  mesh = train.make_mesh()
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), mesh)
  step_fn, _ = train.compile_steps(config, mesh, state.apply_fn, priors)
  batch = {k: v for k, v in _shapes_batch(config).items()}
  state, metrics = step_fn(state, train.global_batch(batch, mesh, train.STEP_KEYS))
  assert metrics['loss'].dtype == jnp.float32 and np.isfinite(float(metrics['loss']))
  floats = [x for x in jax.tree.leaves((state.params, state.opt_state))
            if jnp.issubdtype(x.dtype, jnp.floating)]
  assert floats and all(x.dtype == jnp.float32 for x in floats)


@pytest.mark.slow  # Heavy compiles: the full suite only (quick tier ~ 2 min).
def test_bf16_loss_and_gradients_match_float32_on_one_batch():
  batch = _shapes_batch(_config('float32'))
  loss32, grads32 = _loss_and_grads('float32', batch)
  loss16, grads16 = _loss_and_grads('bfloat16', batch)
  assert abs(float(loss16) - float(loss32)) <= 0.01 * abs(float(loss32))
  flat32 = jax.tree_util.tree_flatten_with_path(grads32)[0]
  flat16 = dict(jax.tree_util.tree_flatten_with_path(grads16)[0])
  cosines = {}
  for path, g32 in flat32:
    assert flat16[path].dtype == jnp.float32
    a = np.asarray(g32, np.float64).ravel()
    b = np.asarray(flat16[path], np.float64).ravel()
    if np.linalg.norm(a) == 0 and np.linalg.norm(b) == 0:  # Maps the 96 px input never reaches.
      continue
    cosines[jax.tree_util.keystr(path)] = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
  assert len(cosines) >= 40
  # Measured (2026-12-04, CPU): 39 of the 43 arrays with a gradient >= 0.99; below: conv1_1
  # kernel 0.963 and bias 0.969, conv8_1 bias 0.987, conv1_2 kernel 0.989. Part of it is the
  # hard-negative selection (top-k of the per-prior loss), whose near-ties flip under bf16:
  # with every negative kept the lowest is 0.984. The 0.99 holds for most arrays,
  # not for every one: asserted as measured.
  low = {k: c for k, c in cosines.items() if c < 0.99}
  assert len(low) <= 0.15 * len(cosines), low
  assert min(cosines.values()) >= 0.95, low


def _train_losses(dtype, steps):
  config = _config(dtype)
  config.input.dataset = 'synthetic'
  config.optimizer.warmup_steps = 10
  config.optimizer.boundaries = (10_000,)
  # At the smoke config's lr 1e-3 both dtypes' losses wander up and down (measured); this
  # descends smoothly (fp32 20.9 -> 10.1, bf16 20.9 -> 10.1 per 20-step mean).
  config.optimizer.learning_rate = 5e-4
  config.optimizer.grad_clip_norm = 10.0
  priors = models.default_boxes(config)
  model = models.create_model(config.model, priors.boxes_per_cell, len(config.input.class_names))
  mesh = train.make_mesh()
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), mesh)
  step_fn, _ = train.compile_steps(config, mesh, state.apply_fn, priors)
  batches = synthetic.train_batches(config)
  out = []
  for _ in range(steps):
    state, metrics = step_fn(state, train.global_batch(next(batches), mesh, train.STEP_KEYS))
    out.append(metrics['loss'])
  return np.asarray(jax.device_get(out), np.float64)


@pytest.mark.slow
def test_200_bf16_steps_decrease_the_loss_like_float32():
  losses32 = _train_losses('float32', 200)
  losses16 = _train_losses('bfloat16', 200)
  assert np.all(np.isfinite(losses16))
  first32, last32 = losses32[:20].mean(), losses32[-20:].mean()
  first16, last16 = losses16[:20].mean(), losses16[-20:].mean()
  assert last32 < 0.7 * first32  # The run learns (four random batches, cycled).
  # bf16 removes the same share of the loss as float32, within 5 points of the start, and
  # follows the same curve (20-step means within 5%).
  assert abs((first16 - last16) - (first32 - last32)) <= 0.05 * first32, (
      first32, last32, first16, last16)
  means32, means16 = losses32.reshape(10, 20).mean(1), losses16.reshape(10, 20).mean(1)
  assert np.all(np.abs(means16 - means32) <= 0.05 * means32), (means32, means16)
