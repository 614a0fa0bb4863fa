"""Default boxes (priors): pure geometry from the config and the model's map sizes (Liu et al.
2016, Sec. 2.2).

For source map k of size f_k, a cell (i, j) has centre ((i + offset) * step_k / S,
(j + offset) * step_k / S) and these boxes, in this order:
  1. a square of side min_size_k,
  2. a square of side sqrt(min_size_k * max_size_k)  (the paper's extra s'_k box; only with
     `anchors.extra_scale`),
  3. for each aspect ratio r: w = min_size_k * sqrt(r), h = min_size_k / sqrt(r), and with
     flip also its transpose (ratio 1/r),
  4. then the same three kinds for each stacked scale of the map (`anchors.stacked_scales`,
     the paper's Table 3: a map can carry several scales), in order: its square of side
     min_size, the square of side sqrt(min_size * max_size) when its max_size is not None,
     and its aspect ratios (with flip, each r also 1/r).
Sizes and steps are in input pixels, normalized by the input size S. Output is
[P, 4] in normalized centre form [cy, cx, h, w], cells row-major per map.

The side f_k of each source map is the model's business: where a run is set up (it knows the
model), `models.map_sizes_at(config.model)` gives them, and `from_config(config, map_sizes_at)`
computes the run's `DefaultBoxes` once; they go to the model (boxes per cell), the jitted
steps (the boxes, the multi-scale layout) and the checkpoint signature.
"""

import dataclasses
import math
from typing import Callable, Sequence

import ml_collections
import numpy as np

from ssd_jax import box_ops
from ssd_jax import errors

# One scale of default boxes on a map: (min_size, max_size or None, aspect ratios), sizes in
# input pixels (an entry of `anchors.stacked_scales`).
Scale = tuple[float, float | None, tuple[float, ...]]

# Input side -> side of each predicting source map (after model.skip_sources), for the model
# of the config (`models.map_sizes_at`); raises UserError for a side too small for it.
MapSizesAt = Callable[[int], Sequence[int]]


def scale_sizes(input_size: int, num_maps: int, s_min: float, s_max: float,
                first_scale: float) -> tuple[list[float], list[float]]:
  """Min/max sizes from the paper's linear scale rule, as the released Caffe models do it.

  The first map (conv4_3) gets `first_scale`; the other maps get scales s_min ..  s_max in
  integer-percent steps floor((s_max - s_min) * 100 / (m - 2)), and each map's max size is the
  next map's min size. With (0.2, 0.9, 0.1) at 300 this gives the Caffe VOC sizes
  30, 60, 111, 162, 213, 264 / 60, 111, 162, 213, 264, 315.
  """
  if num_maps < 3:
    raise errors.UserError(f'The scale rule needs at least 3 source maps, got {num_maps}.')
  min_ratio, max_ratio = int(round(s_min * 100)), int(round(s_max * 100))
  step = (max_ratio - min_ratio) // (num_maps - 2)
  ratios = [min_ratio + i * step for i in range(num_maps - 1)]
  min_sizes = [input_size * first_scale] + [input_size * r / 100 for r in ratios]
  max_sizes = [input_size * s_min] + [input_size * (r + step) / 100 for r in ratios]
  return min_sizes, max_sizes


def _per_map(config: ml_collections.ConfigDict, key: str, num_maps: int) -> list:
  """The entries of a per-map key for the predicting maps (after model.skip_sources)."""
  values, skip = config.anchors[key], config.model.skip_sources
  if len(values) < skip + num_maps:
    raise errors.UserError(f'anchors.{key} has {len(values)} entries but the model has '
                           f'{skip + num_maps} source maps.')
  return list(values)[skip:skip + num_maps]


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def stacked_scales(config: ml_collections.ConfigDict, num_maps: int) -> list[tuple[Scale, ...]]:
  """`anchors.stacked_scales` for `num_maps` predicting source maps: per map, its extra scales
  (min_size, max_size or None, aspect_ratios); () for each map when the key is None.

  The form of every entry is checked (a UserError names the map and entry at fault).
  """
  value = config.anchors.stacked_scales
  if value is None:
    return [()] * num_maps
  if not isinstance(value, (tuple, list)):
    raise errors.UserError(f'anchors.stacked_scales={value!r}: it must be None or one tuple '
                           'of scales per source map.')
  for k, scales in enumerate(value):
    if not isinstance(scales, (tuple, list)) or (scales and _is_number(scales[0])):
      raise errors.UserError(f'anchors.stacked_scales: map {k}: {scales!r} is not a tuple of '
                             '(min_size, max_size or None, aspect_ratios) scales (one scale '
                             'is written ((min_size, max_size, ratios),)).')
    for scale in scales:
      if (not isinstance(scale, (tuple, list)) or len(scale) != 3 or not _is_number(scale[0])
          or not (scale[1] is None or _is_number(scale[1]))
          or not isinstance(scale[2], (tuple, list))
          or not all(_is_number(r) for r in scale[2])):
        raise errors.UserError(f'anchors.stacked_scales: map {k}: {scale!r} is not '
                               '(min_size, max_size or None, aspect_ratios) with positive '
                               'sizes in input pixels and positive ratios.')
  return [tuple((s_min, s_max, tuple(rs)) for s_min, s_max, rs in scales)
          for scales in _per_map(config, 'stacked_scales', num_maps)]


def _scale_count(has_max: bool, ratios: Sequence[float], flip: bool) -> int:
  """Default boxes per cell of one scale: its square, the sqrt(min * max) square, ratios."""
  return 1 + int(has_max) + (2 if flip else 1) * len(ratios)


def boxes_per_cell(config: ml_collections.ConfigDict, num_maps: int) -> list[int]:
  """Default boxes per cell of each of `num_maps` predicting source maps: the map's own
  1 + extra_scale + (1 + flip) * len(ratios), plus each stacked scale's
  1 + (max_size is not None) + (1 + flip) * len(its ratios)."""
  ratios = _per_map(config, 'aspect_ratios', num_maps)
  flip, extra = config.anchors.flip, config.anchors.extra_scale
  return [_scale_count(extra, r, flip) + sum(_scale_count(s_max is not None, rs, flip)
                                             for _, s_max, rs in stacked)
          for r, stacked in zip(ratios, stacked_scales(config, num_maps))]


def box_sizes(config: ml_collections.ConfigDict,
              num_maps: int) -> tuple[list[float], list[float]]:
  """Per-map (min_sizes, max_sizes) in input pixels for `num_maps` predicting source maps."""
  if config.anchors.min_sizes is None:
    return scale_sizes(config.model.input_size, num_maps, config.anchors.s_min,
                       config.anchors.s_max, config.anchors.first_scale)
  if config.anchors.max_sizes is None:
    raise errors.UserError('anchors.min_sizes is set but anchors.max_sizes is None: give both '
                           '(per source map, in input pixels), or set both to None for the '
                           'scale rule (anchors.s_min, s_max, first_scale).')
  return (_per_map(config, 'min_sizes', num_maps), _per_map(config, 'max_sizes', num_maps))


def _scale_shapes(s_min: float, s_max: float | None, ratios: Sequence[float],
                  flip: bool) -> list[tuple[float, float]]:
  """(h, w) in pixels of one scale's boxes, in the order of the module docstring."""
  shapes = [(s_min, s_min)]
  if s_max is not None:
    shapes.append((math.sqrt(s_min * s_max),) * 2)
  for r in ratios:
    shapes.append((s_min / math.sqrt(r), s_min * math.sqrt(r)))
    if flip:
      shapes.append((s_min * math.sqrt(r), s_min / math.sqrt(r)))
  return shapes


def default_boxes(config: ml_collections.ConfigDict, map_sizes: Sequence[int],
                  input_size: int | None = None) -> np.ndarray:
  """All default boxes [P, 4] in normalized [cy, cx, h, w], in the heads' order.

  `map_sizes` are the sides of the predicting source maps at `input_size` (default
  `model.input_size`); `input_size` is for running the model on images of another size
  (multi-scale testing, `config.eval.scales`): the boxes keep their sizes in pixels of the
  trained model, as its convolutions see objects in pixels, and each map's cells are
  `input_size / map size` pixels apart (`anchors.steps` describes `model.input_size` only).
  """
  size = input_size or config.model.input_size
  map_sizes = list(map_sizes)
  min_sizes, max_sizes = box_sizes(config, len(map_sizes))
  ratios = _per_map(config, 'aspect_ratios', len(map_sizes))
  stacked = stacked_scales(config, len(map_sizes))
  steps = (_per_map(config, 'steps', len(map_sizes))
           if config.anchors.steps is not None and size == config.model.input_size
           else [size / f for f in map_sizes])
  boxes = []
  flip = config.anchors.flip
  for f, step, s_min, s_max, rs, more in zip(map_sizes, steps, min_sizes, max_sizes, ratios,
                                             stacked):
    # (h, w) in pixels: the map's own scale, then its stacked scales.
    shapes = _scale_shapes(s_min, s_max if config.anchors.extra_scale else None, rs, flip)
    for scale_min, scale_max, scale_ratios in more:
      shapes += _scale_shapes(scale_min, scale_max, scale_ratios, flip)
    centres = (np.arange(f) + config.anchors.offset) * step / size
    cy, cx = np.meshgrid(centres, centres, indexing='ij')  # [f, f], row-major cells
    hw = np.asarray(shapes) / size  # [k, 2]
    if config.anchors.clip_sizes:  # torchvision: sizes capped to the image, centres kept.
      hw = np.minimum(hw, 1.0)
    grid = np.stack([cy, cx], axis=-1).reshape(-1, 1, 2)  # [f*f, 1, 2]
    boxes.append(np.concatenate(
        [np.broadcast_to(grid, (f * f, len(shapes), 2)),
         np.broadcast_to(hw, (f * f, len(shapes), 2))], axis=-1).reshape(-1, 4))
  boxes = np.concatenate(boxes).astype(np.float32)
  if config.anchors.clip:  # Clip the corners to the image, as Caffe's PriorBox does.
    corners = np.clip(np.asarray(box_ops.cyxhw_to_yxyx(boxes)), 0.0, 1.0)
    boxes = np.asarray(box_ops.yxyx_to_cyxhw(corners))
  return boxes


@dataclasses.dataclass(frozen=True)
class EvalScales:
  """Multi-scale testing (`config.eval.scales`): what the eval step runs and keeps."""
  # (input size, first map, end map) per scale: the predicting maps kept, counted like
  # config.eval.scales (after the model.skip_sources rule of `eval_scales`).
  maps: tuple[tuple[int, int, int], ...]
  scales: tuple[tuple[int, int, int], ...]  # (input size, first prior, end prior) per scale.
  boxes: np.ndarray  # [P', 4] the kept priors of all scales, concatenated in that order.


@dataclasses.dataclass(frozen=True)
class DefaultBoxes:
  """A config's default boxes and their layout over the source maps."""
  boxes: np.ndarray  # [P, 4] normalized [cy, cx, h, w], in the heads' order.
  map_sizes: tuple[int, ...]  # Side of each source map.
  boxes_per_cell: tuple[int, ...]  # Default boxes per cell of each source map.
  min_sizes: tuple[float, ...]  # Per-map box sizes in input pixels (each map's own scale).
  max_sizes: tuple[float, ...]
  stacked_scales: tuple[tuple[Scale, ...], ...]  # Per map: anchors.stacked_scales.
  eval_scales: EvalScales | None  # config.eval.scales (`eval_scales`); None when off.


def from_config(config: ml_collections.ConfigDict, map_sizes_at: MapSizesAt) -> DefaultBoxes:
  """The default boxes of `config` (config.anchors, model.input_size, model.skip_sources) on
  the source maps `map_sizes_at` gives (`models.map_sizes_at(config.model)`)."""
  map_sizes = list(map_sizes_at(config.model.input_size))
  min_sizes, max_sizes = box_sizes(config, len(map_sizes))
  return DefaultBoxes(boxes=default_boxes(config, map_sizes), map_sizes=tuple(map_sizes),
                      boxes_per_cell=tuple(boxes_per_cell(config, len(map_sizes))),
                      min_sizes=tuple(float(s) for s in min_sizes),
                      max_sizes=tuple(float(s) for s in max_sizes),
                      stacked_scales=tuple(stacked_scales(config, len(map_sizes))),
                      eval_scales=eval_scales(config, map_sizes_at))


def eval_scale_maps(config: ml_collections.ConfigDict
                    ) -> tuple[tuple[int, int, int], ...] | None:
  """`config.eval.scales` as (size, first_map, end_map) per scale, or None when off.

  Checks the form of each entry (a UserError names a malformed one); whether the model has
  those maps at that size is checked by `eval_scales`.
  """
  entries = config.eval.scales
  if entries is None:
    return None
  if not entries:
    raise errors.UserError('config.eval.scales is empty; use None for model.input_size alone.')
  for entry in entries:
    if (not isinstance(entry, (tuple, list)) or len(entry) != 3 or
        not all(isinstance(v, int) for v in entry)):
      raise errors.UserError(f'config.eval.scales: {entry!r} is not (size, first_map, '
                             'end_map) in integers.')
  return tuple(tuple(entry) for entry in entries)


def eval_input_size(config: ml_collections.ConfigDict) -> int:
  """The side evaluation images are prepared at: the largest of `config.eval.scales` (the eval
  step resizes to the others), else `model.input_size`."""
  maps = eval_scale_maps(config)
  return config.model.input_size if maps is None else max(size for size, _, _ in maps)


def eval_scales(config: ml_collections.ConfigDict, map_sizes_at: MapSizesAt
                ) -> EvalScales | None:
  """The scales of `config.eval.scales` as prior ranges and boxes; None when it is off.

  Each entry `(size, first_map, end_map)` runs the model on the image resized to size x size
  and keeps the predictions of source maps first_map .. end_map - 1 with their default boxes
  at that size (`default_boxes`). Maps are counted like the per-map anchor keys: all of the
  model's source maps, the `model.skip_sources` finest (which predict nothing) included. A
  range's skipped maps are replaced by the finest predicting map (where a Table 3 variant
  stacks their scales, experiments/sweeps.py), so an entry stays valid when maps are
  skipped: with skip_sources=2, (224, 0, 2) keeps map 2 and (96, 2, 6) maps 2 .. 5. A size
  too small for the model or maps it does not have raise a UserError naming the entry.
  """
  maps = eval_scale_maps(config)
  if maps is None:
    return None
  skip = config.model.skip_sources
  kept, scales, boxes = [], [], []
  for entry in maps:
    size, first, end = entry
    try:
      map_sizes = list(map_sizes_at(size))
    except errors.UserError as e:  # A size too small for the model.
      raise errors.UserError(f'config.eval.scales: {entry!r}: {e}') from None
    total = skip + len(map_sizes)
    if not 0 <= first < end <= total:
      raise errors.UserError(f'config.eval.scales: maps {first} .. {end - 1} of {entry!r} are '
                             f'not among the model\'s {total} source maps (0 .. '
                             f'{total - 1}).')
    first, end = max(first, skip), max(end, skip + 1)  # Skipped maps: the finest predicting.
    kept.append((size, first, end))
    per_cell = boxes_per_cell(config, len(map_sizes))
    counts = np.cumsum([0] + [f * f * k for f, k in zip(map_sizes, per_cell)])
    start, stop = int(counts[first - skip]), int(counts[end - skip])
    scales.append((size, start, stop))
    boxes.append(default_boxes(config, map_sizes, size)[start:stop])
  return EvalScales(maps=tuple(kept), scales=tuple(scales), boxes=np.concatenate(boxes))
