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

# The paper's Table 3: which source maps predict. The finest maps are removed first; the
# remaining maps get more aspect ratios so that the total stays closer to the full model's
# (the paper stacks extra scales instead, which anchors.py does not have). With the scale rule
# (min_sizes None) the box sizes are spread over the remaining maps, as the paper adjusts
# them. The `priors` column of the results shows how close each row comes.
SOURCE_LAYERS = (
    ('all_maps', {}),
    ('no_finest', {'model.skip_sources': 1,
                   'anchors.aspect_ratios': _every_map((1.5, 2, 3, 4))}),
    ('no_two_finest', {'model.skip_sources': 2,
                       'anchors.aspect_ratios': _every_map((1.25, 1.5, 2, 2.5, 3, 4))}),
)

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
