"""The import-time check of the library APIs the compute path needs."""

import pytest

from ssd_jax import stack


def test_the_installed_stack_has_every_api():
  assert stack.missing() == []
  stack.check()


def test_a_missing_api_is_named_in_one_line(monkeypatch):
  assert stack.missing((('jax', 'tree.map'), ('jax', 'tree_no_such_fn'),
                        ('optax', 'tree.no_such'))) == [
      f'jax.tree_no_such_fn (jax {__import__("jax").__version__})',
      f'optax.tree.no_such (optax {__import__("optax").__version__})']
  monkeypatch.setattr(stack, 'missing', lambda: ['numpy.no_such_api (numpy 2)'])
  with pytest.raises(ImportError, match=r'^ssd_jax needs APIs this Python stack lacks: '
                     r'numpy\.no_such_api \(numpy 2\) \(requirements'):
    stack.check()
