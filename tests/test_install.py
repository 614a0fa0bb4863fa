"""`pip install .` (and `-e .`) of the repository into a fresh venv, then a command run from
another folder uses the installed package: no path tricks, `configs` ships with it.

Installing TensorFlow and JAX again would take minutes (and a network), so the fresh venv sees
this interpreter's packages through a .pth file, and pip installs the project alone
(--no-deps --no-build-isolation --no-index: nothing is downloaded).
"""

import os
import shutil
import subprocess
import sysconfig
import venv

import pytest

from configs import smoke
from ssd_jax import anchors
from ssd_jax import describe
from ssd_jax import models
from tests import command_line

# What `pip install .` needs from a checkout (pyproject.toml names them).
PACKAGE_FILES = ('pyproject.toml', 'README.md', 'requirements.txt', 'ssd_jax', 'configs')


def _fresh_venv(path: str) -> str:
  """A venv without pip whose Python also sees this interpreter's packages; its python."""
  venv.create(path, with_pip=False)
  python = os.path.join(path, 'bin', 'python')
  site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                        capture_output=True, text=True, check=True).stdout.strip()
  with open(os.path.join(site, 'outer_packages.pth'), 'w') as f:
    f.write(sysconfig.get_path('purelib') + '\n')
  return python


def _run(python, *args, cwd):
  environ = {k: v for k, v in os.environ.items()
             if k not in ('PYTHONPATH', 'SSD_JAX_TRACEBACK')}
  return subprocess.run([python, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                        env=dict(environ, JAX_PLATFORMS='cpu', PIP_NO_INDEX='1',
                                 PIP_DISABLE_PIP_VERSION_CHECK='1'))


@pytest.mark.slow
@pytest.mark.parametrize('editable', [False, True], ids=['install', 'editable'])
def test_installed_package_runs_describe_from_another_folder(editable, tmp_path):
  source = tmp_path / 'checkout'  # A copy: pip's build writes build/ and *.egg-info there.
  source.mkdir()
  for name in PACKAGE_FILES:
    src = os.path.join(command_line.REPO, name)
    if os.path.isdir(src):
      shutil.copytree(src, source / name, ignore=shutil.ignore_patterns('__pycache__'))
    else:
      shutil.copy(src, source / name)
  python = _fresh_venv(str(tmp_path / 'venv'))
  install = ['-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-cache-dir']
  install += ['-e', str(source)] if editable else [str(source)]
  result = _run(python, *install, cwd=str(tmp_path))
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

  elsewhere = tmp_path / 'elsewhere'  # Neither the repository nor the copy.
  elsewhere.mkdir()
  shutil.copy(os.path.join(command_line.REPO, 'configs', 'smoke.py'), elsewhere / 'my_smoke.py')
  if not editable:
    shutil.rmtree(source)  # Only the installed copy is left to run.
  where = _run(python, '-c', 'import configs, ssd_jax; print(ssd_jax.__file__); '
               'print(configs.__file__)', cwd=str(elsewhere))
  assert where.returncode == 0, where.stderr[-3000:]
  home = source if editable else tmp_path / 'venv'
  for path in where.stdout.split():
    assert path.startswith(str(home) + os.sep), (path, home)

  # A config file outside the repository, importing `configs.default` as every config does.
  result = _run(python, '-m', 'ssd_jax.main', '--config=my_smoke.py', '--mode=describe',
                cwd=str(elsewhere))
  assert result.returncode == 0, result.stderr[-3000:]
  config = smoke.get_config()
  expected = describe.format_summary(describe.describe(config, anchors.from_config(config, models.map_sizes_at(config.model))))
  assert result.stdout.strip() == expected.strip()
