"""Named sweeps: lists of variants, each a name and a dict of dotted config overrides.

`python -m experiments.sweep --sweep=<name>` trains and evaluates each variant (docs/sweeps.md).
A variant overrides keys of the base config given with --config; `{}` is the base config
itself. Per-map keys (`anchors.aspect_ratios`, ...) list 7 entries, the most maps any arch has
(ssd512 at 512 px); a model with fewer predicting maps uses the first ones.

To add a sweep, add an entry to SWEEPS, or, without editing the package, write a file that
defines `VARIANTS = ((name, overrides), ...)` and pass `--sweep=path/to/it.py` (or sweep one
key with `--vary=<key>=<v1>,<v2>`). To extend a sweep, append variants (a sweep folder keeps
the results of the variants it has and trains only the new ones). Do not change the overrides
of a variant that has results: the runner refuses a folder whose variant differs.
"""

from configs import shapes
from ssd_jax import anchors
from ssd_jax import models

MAX_MAPS = 7


def _every_map(ratios):
  """The same extra aspect ratios on every map."""
  return (tuple(ratios),) * MAX_MAPS


# The paper's Table 2: which default box shapes. Rows follow the paper's, plus the base
# config's own mix and one set fitted to the data.
DEFAULT_BOXES = (
    # One box per cell: the square of side min_size only.
    ('one_box', {'anchors.aspect_ratios': _every_map(()), 'anchors.extra_scale': False}),
    # {1, 2, 1/2} plus the extra-scale square: 4 per cell on every map.
    ('ratios_2', {'anchors.aspect_ratios': _every_map((2,)), 'anchors.extra_scale': True}),
    # Whatever the --config file sets (SSD300: 4 or 6 per map; shapes: 4 on its conv3 map,
    # 6 on the others).
    ('config', {}),
    # {1, 2, 1/2, 3, 1/3} plus the extra-scale square: 6 per cell on every map.
    ('ratios_2_3', {'anchors.aspect_ratios': _every_map((2, 3)), 'anchors.extra_scale': True}),
    # Fitted to the data: the shapes objects have aspect ratios spread evenly in log between
    # 1:3 and 3:1 (docs/data.md; experiments/prior_coverage.py shows them per size), so
    # ratios sqrt(3) and 3 place the 5 shapes at log-aspect 0, +-0.55, +-1.1, evenly over that
    # range, where {2, 3} leave a gap between 1 and 2. Same count as ratios_2_3, so only the
    # shapes differ. (For VOC, refit from its statistics.)
    ('fitted_ratios', {'anchors.aspect_ratios': _every_map((1.732, 3.0)),
                       'anchors.extra_scale': True}),
)


def stack_removed_maps(config, skip: int) -> dict:
  """Overrides that remove the `skip` finest source maps of `config` (model.skip_sources)
  and stack their default boxes on the finest remaining map, keeping the total.

  A removed map of f x f cells becomes n = round((f / f_t)^2) scales on the remaining map of
  f_t x f_t cells (4 per halving of the side), each with the removed map's aspect ratios,
  their sizes spread evenly in log over its [min_size, max_size): scale i spans min * q^i ..
  min * q^(i+1), q = (max / min)^(1 / n), with its sqrt(min * max) square when
  `anchors.extra_scale` is on. So the removed map's f^2 cells x k boxes become f_t^2 cells x
  n * k boxes (the same count when (f / f_t)^2 is whole), over the same box sizes in finer
  size steps, at the coarser stride. The box sizes are `config`'s: its min_sizes / max_sizes,
  or, where those are None, the scale rule's over all maps, then set as anchors.min_sizes /
  max_sizes so that the remaining maps keep them (the rule would spread its sizes over the
  remaining maps only).
  """
  if config.model.skip_sources or config.anchors.stacked_scales is not None:
    raise ValueError('stack_removed_maps takes a config with all maps and no stacked scales.')
  map_sizes = models.map_sizes_at(config.model)(config.model.input_size)
  min_sizes, max_sizes = anchors.box_sizes(config, len(map_sizes))
  ratios = [tuple(r) for r in config.anchors.aspect_ratios[:len(map_sizes)]]
  stacked = []
  for f, s_min, s_max, rs in zip(map_sizes[:skip], min_sizes, max_sizes, ratios):
    n = round((f / map_sizes[skip]) ** 2)
    edges = [round(s_min * (s_max / s_min) ** (i / n), 2) for i in range(n + 1)]
    stacked += [(lo, hi if config.anchors.extra_scale else None, rs)
                for lo, hi in zip(edges, edges[1:])]
  overrides = {'model.skip_sources': skip,
               'anchors.stacked_scales': tuple(tuple(stacked) if k == skip else ()
                                               for k in range(len(map_sizes)))}
  if config.anchors.min_sizes is None:  # Pin the rule's sizes for all maps.
    overrides['anchors.min_sizes'] = tuple(round(float(s), 2) for s in min_sizes)
    overrides['anchors.max_sizes'] = tuple(round(float(s), 2) for s in max_sizes)
  return overrides


def source_layers(config) -> tuple:
  """The paper's Table 3 on `config`: all maps, without the finest, without the two finest,
  each removed map's boxes stacked on the finest remaining map (`stack_removed_maps`)."""
  return (('all_maps', {}),
          ('no_finest', stack_removed_maps(config, 1)),
          ('no_two_finest', stack_removed_maps(config, 2)))


# The paper's Table 3: which source maps predict. The finest maps are removed first and their
# default boxes stacked as extra scales on the finest remaining map, so that the total stays
# the full model's (configs/shapes.py: 6142 priors each; `priors` column of the results). The
# sizes are those of configs/shapes.py, the embedded data's config; for another base config,
# a sweep file with `VARIANTS = sweeps.source_layers(my_config.get_config())`.
SOURCE_LAYERS = source_layers(shapes.get_config())

# Two quick variants for tests with configs/smoke.py.
SMOKE = (
    ('config', {}),
    ('one_box', DEFAULT_BOXES[0][1]),
)

SWEEPS = {
    'default_boxes': DEFAULT_BOXES,
    'source_layers': SOURCE_LAYERS,
    'smoke': SMOKE,
}
