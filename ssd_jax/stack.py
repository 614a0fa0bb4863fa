"""The library APIs the compute path relies on, checked once at import (one-line failure).

The code runs on the pinned stack (requirements.txt) and on newer ones (e.g. a GPU machine's
own jax 0.11 / numpy 2.x): it needs these APIs, not exact versions. A stack that lacks one
fails here with one line naming it, instead of deep inside a training step.
"""

import importlib

# (module, dotted attribute) pairs: what train.py, checkpoints.py and the model use.
REQUIRED = (
    ('jax', 'tree.map'),
    ('jax', 'make_array_from_process_local_data'),
    ('jax', 'sharding.NamedSharding'),
    ('jax', 'experimental.multihost_utils.process_allgather'),
    ('numpy', 'random.default_rng'),
    ('optax', 'tree.norm'),
    ('flax', 'linen.Module'),
    ('flax', 'training.train_state.TrainState'),
    ('orbax.checkpoint', 'args.StandardSave'),
    ('orbax.checkpoint', 'args.JsonSave'),
    ('orbax.checkpoint', 'checkpoint_managers.BestN'),
    ('orbax.checkpoint', 'checkpoint_managers.AnyPreservationPolicy'),
)
MIN_NUMPY = (1, 26)


def missing(required=REQUIRED) -> list[str]:
  """'module.attr (module version)' for every required API that is absent."""
  out = []
  for module_name, attr in required:
    try:
      obj = importlib.import_module(module_name)
      for part in attr.split('.'):
        if hasattr(obj, part):
          obj = getattr(obj, part)
        else:  # A submodule its package does not import (or absent: ImportError).
          obj = importlib.import_module(f'{obj.__name__}.{part}')
    except (ImportError, AttributeError):
      version = getattr(importlib.import_module(module_name.split('.')[0]), '__version__', '?')
      out.append(f'{module_name}.{attr} ({module_name.split(".")[0]} {version})')
  return out


def check() -> None:
  """Raises ImportError (one line) if the installed stack lacks an API the code needs."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  problems = missing()
  if tuple(int(p) for p in np.__version__.split('.')[:2]) < MIN_NUMPY:
    problems.append(f'numpy >= {".".join(map(str, MIN_NUMPY))} (numpy {np.__version__})')
  if problems:
    raise ImportError('ssd_jax needs APIs this Python stack lacks: ' + '; '.join(problems) +
                      ' (requirements.txt lists a stack that has them).')
