"""What verifying the array checksums costs on restore, at SSD300 size (docs/results/checkpoints.md).

  python -m experiments.checksum_cost [--config=configs/ssd300_voc.py] [--repeats=3]

Builds the config's train state (params + optimizer state), saves it with `checkpoints.save`
into a temporary folder, then times, `--repeats` times each, a restore without verification
(orbax's restore, what `checkpoints._restore_step` does before it checks) and the
verification alone (`checkpoints.checksums` of the restored state), and prints the share.
"""

import os
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np
import orbax.checkpoint as ocp

from ssd_jax import checkpoints
from ssd_jax import models
from ssd_jax import train

_CONFIG = flags.DEFINE_string('config', 'configs/ssd300_voc.py', 'Config file.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed restores (the median is printed).')


def _load(path):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def main(argv):
  del argv
  config = _load(_CONFIG.value)
  priors = models.default_boxes(config)
  model = models.create_model(config.model, priors.boxes_per_cell, len(config.input.class_names))
  mesh = train.make_mesh()
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), mesh)
  nbytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(state))
  signature = checkpoints.model_signature(config, priors)
  with tempfile.TemporaryDirectory() as workdir:
    manager = checkpoints.create_manager(workdir, config)
    checkpoints.save(manager, 1, state, signature)
    checkpoints.wait_until_finished(manager)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    restore_s, verify_s = [], []
    for _ in range(_REPEATS.value):
      started = time.perf_counter()
      restored = manager.restore(1, args=ocp.args.Composite(**{
          checkpoints.STATE: ocp.args.StandardRestore(abstract)}))[checkpoints.STATE]
      jax.block_until_ready(restored)
      restore_s.append(time.perf_counter() - started)
      started = time.perf_counter()
      checkpoints.checksums(restored)
      verify_s.append(time.perf_counter() - started)
    manager.close()
  restore, verify = float(np.median(restore_s)), float(np.median(verify_s))
  print(f'{_CONFIG.value}: state {nbytes / 2**20:.1f} MiB in {len(jax.tree.leaves(state))} '
        f'arrays on {jax.devices()[0].device_kind} ({os.cpu_count()} host cores); restore '
        f'{restore:.3f} s, verification {verify:.3f} s = {100 * verify / restore:.1f}% of the '
        f'restore (medians of {_REPEATS.value}; all: restore {[round(t, 3) for t in restore_s]}, '
        f'verification {[round(t, 3) for t in verify_s]})')


if __name__ == '__main__':
  sys.exit(app.run(main))
