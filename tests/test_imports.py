"""The package's modules import each other without a circle."""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ssd_jax')


def module_name(path: str) -> str:
  parts = os.path.relpath(path, os.path.dirname(PACKAGE))[:-len('.py')].split(os.sep)
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def import_graph() -> dict[str, set[str]]:
  """{module: ssd_jax modules it imports at module level} for every module of ssd_jax.

  `from ssd_jax.a import b` counts as importing ssd_jax.a.b when that is a module, else
  ssd_jax.a. Imports inside functions run at call time and cannot make a circle at import.
  """
  paths = [os.path.join(root, name) for root, _, names in os.walk(PACKAGE)
           for name in names if name.endswith('.py')]
  modules = {module_name(p): p for p in paths}
  graph = {}
  for name, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    targets = set()
    for node in tree.body:  # Module level only (try/if blocks at top level included).
      for sub in ast.walk(node) if isinstance(node, (ast.Try, ast.If)) else (node,):
        if isinstance(sub, ast.Import):
          targets |= {a.name for a in sub.names}
        elif isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
          targets |= {f'{sub.module}.{a.name}' if f'{sub.module}.{a.name}' in modules
                      else sub.module for a in sub.names}
    graph[name] = {t for t in targets if t in modules and t != name}
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import circle of `graph` as [a, b, ..., a], or None (depth-first search)."""
  state, stack = {}, []

  def visit(node):
    state[node] = 'open'
    stack.append(node)
    for other in sorted(graph[node]):
      if state.get(other) == 'open':
        return stack[stack.index(other):] + [other]
      if other not in state:
        cycle = visit(other)
        if cycle:
          return cycle
    stack.pop()
    state[node] = 'done'
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_the_graph_sees_the_imports_it_should():
  graph = import_graph()
  assert 'ssd_jax.evaluation.devkit' in graph['ssd_jax.evaluation.voc']
  assert 'ssd_jax.evaluation.size_bins' in graph['ssd_jax.evaluation.voc']
  assert 'ssd_jax.models.conv_grad' in graph['ssd_jax.models.vgg']
  assert 'ssd_jax.evaluation.voc' in graph['ssd_jax.evaluation']  # the package's __init__
  assert 'ssd_jax.models.ssd' in graph['ssd_jax.models']


def test_find_cycle_finds_a_circle():
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == ['a', 'b', 'c', 'a']
  assert find_cycle({'a': {'b'}, 'b': set(), 'c': {'a', 'b'}}) is None


def test_no_import_circle_in_the_package():
  cycle = find_cycle(import_graph())
  assert cycle is None, 'import circle: ' + ' -> '.join(cycle)


@pytest.mark.parametrize('module', ['ssd_jax.anchors'])
def test_default_boxes_do_not_depend_on_the_model(module):
  """anchors.py is geometry: the model's map sizes come in as an argument."""
  graph = import_graph()
  seen, todo = set(), [module]
  while todo:
    for other in graph[todo.pop()] - seen:
      seen.add(other)
      todo.append(other)
  assert not {m for m in seen if m.startswith('ssd_jax.models')}, seen
