"""Runs Python code in a subprocess where TensorFlow, tfds, clu and pycocotools cannot be
imported, as on a bare accelerator machine that lacks them."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKED = ('tensorflow', 'tensorflow_datasets', 'clu', 'pycocotools')

# Installed first. `sys.modules[name] = None` makes `import name` raise ModuleNotFoundError and
# `importlib.util.find_spec(name)` return None, as where the package is not installed (etils
# and others probe with find_spec); the meta path finder refuses anything below them.
PRELUDE = f'''
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in {BLOCKED!r}:
      raise ModuleNotFoundError(f'No module named {{name!r}} (blocked in this test)')
    return None
sys.meta_path.insert(0, _Blocked())
for _name in {BLOCKED!r}:
  sys.modules[_name] = None
'''

# Appended last: fails if a blocked package got into sys.modules anyway.
EPILOGUE = f'''
_loaded = sorted(m for m, v in sys.modules.items() if v is not None
                 and m.split('.')[0] in {BLOCKED!r})
assert not _loaded, _loaded
print('no blocked module was imported')
'''


def run(code: str, args=(), timeout=900, env=None) -> subprocess.CompletedProcess:
  """`python -c PRELUDE + code + EPILOGUE args...` in the repo root (JAX on CPU)."""
  env = dict(os.environ if env is None else env, JAX_PLATFORMS='cpu')
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  return subprocess.run([sys.executable, '-c', PRELUDE + code + EPILOGUE, *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout, env=env)


def run_module(module: str, args=(), **kw) -> subprocess.CompletedProcess:
  """`python -m module args...` with the imports blocked (absl's app.run sees `args`)."""
  code = (f'import runpy\nsys.argv = [{module!r}] + sys.argv[1:]\n'
          f'try:\n  runpy.run_module({module!r}, run_name="__main__", alter_sys=True)\n'
          'except SystemExit as e:\n  assert not e.code, e.code\n')
  return run(code, args, **kw)
