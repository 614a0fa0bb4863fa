"""A summary of a config's model and default boxes, printed without training."""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssd_jax import anchors
from ssd_jax import models


def forward_flops(model, variables, input_size: int) -> float | None:
  """FLOPs of one forward pass on one image, from XLA's cost analysis (None if unavailable)."""
  images = jax.ShapeDtypeStruct((1, input_size, input_size, 3), jnp.float32)
  try:
    cost = jax.jit(model.apply).lower(variables, images).cost_analysis()
  except Exception:  # pylint: disable=broad-except  # Cost analysis is optional per backend.
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


def describe(config: ml_collections.ConfigDict, priors: anchors.DefaultBoxes) -> dict:
  """Per-source-map sizes and prior counts, the total, parameter count and forward GFLOPs.

  `priors` are the run's default boxes (`anchors.from_config`).
  """
  skip = config.model.skip_sources
  names = models.source_names(config.model.arch, config.model.conv3_source)[skip:]
  # 'index': the map's place among all source maps (skipped ones counted), as the per-map
  # anchor keys and eval.scales count them.
  layers = [{'index': i, 'name': n, 'map_size': f, 'boxes_per_cell': k, 'priors': f * f * k,
             'min_size': lo, 'max_size': hi,
             # anchors.stacked_scales: [min_size, max_size or None, aspect ratios] per scale.
             'stacked_scales': [[a, b, list(r)] for a, b, r in stacked]}
            for i, n, f, k, lo, hi, stacked in zip(
                itertools.count(skip), names, priors.map_sizes, priors.boxes_per_cell,
                priors.min_sizes, priors.max_sizes, priors.stacked_scales)]
  num_classes = len(config.input.class_names)
  model = models.create_model(config.model, priors.boxes_per_cell, num_classes)
  size = config.model.input_size
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                             jnp.zeros((1, size, size, 3), jnp.float32))
  num_params = int(sum(np.prod(x.shape) for x in jax.tree.leaves(variables['params'])))
  flops = forward_flops(model, variables, size)
  return {
      'arch': config.model.arch, 'input_size': size, 'width': config.model.width,
      'num_classes': num_classes, 'layers': layers,
      'total_priors': int(priors.boxes.shape[0]),
      'num_params': num_params,
      'forward_gflops': None if flops is None else flops / 1e9,
      # Multi-scale testing: [input size, first map, last map] per scale (maps counted with
      # the skipped ones, like config.eval.scales); None = off.
      'eval_scales': (None if priors.eval_scales is None else
                      [[size, first, end - 1] for size, first, end in priors.eval_scales.maps]),
  }


def _stacked(scales: list) -> str:
  """'  + 4 stacked scales 11.0 .. 22.0 px' for a map's stacked scales ('' for none)."""
  if not scales:
    return ''
  low = min(a for a, _, _ in scales)
  high = max(a if b is None else b for a, b, _ in scales)
  return (f"  + {len(scales)} stacked scale{'s' * (len(scales) > 1)} "
          f"{low:.1f} .. {high:.1f} px")


def format_summary(summary: dict) -> str:
  lines = [f"{summary['arch']} input {summary['input_size']}x{summary['input_size']}, width "
           f"x{summary['width']}, {summary['num_classes']} classes + background",
           f"{'source':<13} {'map':>7} {'boxes/cell':>10} {'priors':>7} {'min':>7} {'max':>7}"]
  for l in summary['layers']:
    lines.append(f"{l['index']:>2} {l['name']:<10} {l['map_size']:>3}x{l['map_size']:<3} "
                 f"{l['boxes_per_cell']:>10} {l['priors']:>7} {l['min_size']:>7.1f} "
                 f"{l['max_size']:>7.1f}" + _stacked(l['stacked_scales']))
  lines.append(f"total priors: {summary['total_priors']}")
  lines.append(f"parameters: {summary['num_params']:,}")
  gflops = summary['forward_gflops']
  lines.append('forward GFLOPs per image: ' + ('n/a' if gflops is None else f'{gflops:.2f}'))
  if summary.get('eval_scales'):
    lines.append('evaluated at: ' + ', '.join(f'{s} px (maps {a}-{b})'
                                               for s, a, b in summary['eval_scales']))
  return '\n'.join(lines)
