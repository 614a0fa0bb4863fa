"""Running a command (`python -m <module>`) as a user would, and checking its one-line error."""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(module: str, *args, env=None) -> subprocess.CompletedProcess:
  """Runs `python -m module args` from the repository root; tracebacks off as for a user."""
  environ = {k: v for k, v in os.environ.items() if k != 'SSD_JAX_TRACEBACK'}
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, capture_output=True,
                        text=True, timeout=300, env=dict(environ, **(env or {})))


def assert_one_error_line(result: subprocess.CompletedProcess, prog: str, pattern: str) -> str:
  """Exit status 1 and stderr ending in exactly one `<prog>: error: ...` line that matches
  `pattern` (re.search), with no traceback; returns that line."""
  lines = result.stderr.splitlines()
  errors = [line for line in lines if line.startswith(f'{prog}: error:')]
  assert result.returncode == 1, (result.returncode, result.stderr)
  assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
  assert 'Traceback' not in result.stderr, result.stderr
  assert re.search(pattern, errors[0]), errors[0]
  return errors[0]
