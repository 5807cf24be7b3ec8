# Copyright 2026 Roboflare developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""
The package's layers, held: a module imports its own layer and the layers below it only.

Every import counts, those inside functions too, and none may close a cycle. The layers, top
to bottom, are the subpackages (and the one top-level module) that roboflare_bridge's
docstring describes.
"""

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import roboflare_bridge

PACKAGE = Path(roboflare_bridge.__file__).resolve().parent
LAYERS = ['node', 'tools', 'shell', 'fleet', 'mirror', 'upstream', 'parameters', 'control',
          'codec', 'transport', 'common']


def modules() -> Dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        found['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return found


def imports(module: str, path: Path) -> Iterator[str]:
    """Yield the roboflare_bridge modules that ``module`` imports, anywhere in it."""
    package = module if path.name == '__init__.py' else module.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.')
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            yield target
            yield from (f'{target}.{alias.name}' for alias in node.names)


def edges() -> List[Tuple[str, str]]:
    known = modules()
    found = []
    for module, path in known.items():
        for target in imports(module, path):
            if target in known and target != module and target != 'roboflare_bridge':
                found.append((module, target))
    return found


def layer(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def test_every_module_is_in_a_layer():
    assert {layer(m) for m in modules() if layer(m)} == set(LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    upward = [f'{source} imports {target}' for source, target in edges()
              if LAYERS.index(layer(target)) < LAYERS.index(layer(source))]
    assert not upward, '\n'.join(upward)


def test_no_import_cycle():
    graph: Dict[str, Set[str]] = {}
    for source, target in edges():
        graph.setdefault(source, set()).add(target)
    cycles = []
    state: Dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: List[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(' -> '.join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, '\n'.join(cycles)


def test_the_runtime_package_holds_no_test_world():
    test_world = [f'{module} imports {target}' for module, path in modules().items()
                  for target in imports(module, path) if target.startswith('roboflare_dev')]
    assert not test_world, '\n'.join(test_world)
