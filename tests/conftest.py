"""Shared pytest setup: TF's C++ logs off, and one persistent XLA compilation cache for the
whole run. (pyproject.toml puts the repository root on the path, for `configs`.)"""

import os
import shutil
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# The tests compile the same few smoke-config programs (init, train step, eval step) in many
# tests, in both xdist workers and in the command-line subprocesses; on CPU each compile takes
# seconds (the model init alone ~25 s). A compilation cache made fresh for this run (so a run
# never reuses a previous run's programs) and inherited through the environment by the xdist
# workers and every subprocess compiles each program once. The compiled programs are the same
# as without it. An entry another process is still writing reads as a miss (a warning) and is
# compiled again.
_CACHE_CREATED = None
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE_CREATED = tempfile.mkdtemp(prefix='ssd_jax_tests_jit_cache_')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE_CREATED
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')


def pytest_unconfigure(config):
  del config
  if _CACHE_CREATED:  # Only the process that made it (the xdist controller, or plain pytest).
    shutil.rmtree(_CACHE_CREATED, ignore_errors=True)
