"""Imports run one way: every module imports on its own, and no modules import each other in a
circle (settings and vocabularies at the bottom, registries above what they register, the
experiment layer on top).

* ``test_module_imports_alone``: one test per module of the package. Each module is imported
  in a fresh interpreter of its own: a single subprocess (``sys.executable``, this process's
  environment with the package's folder first on ``PYTHONPATH``) imports once the
  third-party modules the package imports at module level (``torch``, ``numpy``, ``scipy.stats``
  ...: not ours, and slow: importing them per module took 4 minutes; ``matplotlib.pyplot`` is
  left to the package, which picks the backend first), checks that no ``ctxfusion`` module is
  loaded yet, then ``os.fork()``s one child
  per module (Linux) that runs ``importlib.import_module(name)`` and exits 0, or 1 with the
  traceback sent back through a pipe. So each module is imported with nothing of ctxfusion
  loaded before it, which catches an import that only works when another module happened to
  be imported first. A ``__main__`` module is run with ``--version`` (it runs the command):
  exit status 0 passes.
* ``test_no_import_cycles``: the import graph of the package, read from the source with
  :mod:`ast` (the right tool: it sees every import statement exactly as written, with its
  line, without running any module and without a third-party tool), and its strongly
  connected components (Tarjan): each component of more than one module is a cycle, listed
  with the import lines that close it.

Edges of the graph: every import statement that runs, at module level or inside a function
(a cycle hidden by a deferred import is still a cycle); only those under
``if TYPE_CHECKING:`` are left out (they never run). ``import a.b`` is an edge to ``a.b`` as
written; ``from a import b`` is an edge to ``a`` (its ``__init__`` runs, and ``b`` is read from
it) and to ``a.b`` when that is a module. Relative imports are resolved. The parent packages
that importing a submodule also runs are not added, nor ``importlib.import_module`` calls.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

PACKAGE = "ctxfusion"
#: the folder of the package that ``import ctxfusion`` loads here (the one under test)
PACKAGE_DIR = Path(importlib.util.find_spec(PACKAGE).submodule_search_locations[0])

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the first import}


def find_modules(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module under ``package_dir`` by dotted name (a package is its ``__init__``)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(node: ast.AST) -> Iterable[ast.AST]:
    """Every node under ``node`` except the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def import_graph(modules: dict[str, Path]) -> Graph:
    """The edges described in the module docstring, between the modules of ``modules``."""
    graph: Graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, {})

        def add(target: str, line: int, name: str = name, edges: dict = edges) -> None:
            if target in modules and target != name:
                edges.setdefault(target, line)

        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, node.module] if node.module else parts)
                else:
                    base = node.module or ""
                add(base, node.lineno)
                for alias in node.names:
                    add(f"{base}.{alias.name}", node.lineno)
    return graph


def import_cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def describe(cycle: list[str], graph: Graph, modules: dict[str, Path]) -> str:
    """A cycle with the import lines between its modules."""
    lines = [" <-> ".join(cycle)]
    for source in cycle:
        for target, line in sorted(graph[source].items()):
            if target in cycle:
                where = modules[source].relative_to(PACKAGE_DIR.parent)
                lines.append(f"    {where}:{line}: {source} -> {target}")
    return "\n".join(lines)


def third_party_imports(modules: dict[str, Path], package: str) -> list[str]:
    """The modules outside the package and the standard library that ``modules`` import at
    module level, as written (``scipy.stats``), ``matplotlib.pyplot`` aside."""
    found = set()
    for path in modules.values():
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module)
    top = {package, *sys.stdlib_module_names}
    return sorted(m for m in found if m.partition(".")[0] not in top
                  and m != "matplotlib.pyplot")


MODULES = find_modules(PACKAGE_DIR, PACKAGE)

_IMPORT_EACH = textwrap.dedent("""
    import importlib, io, json, os, sys, traceback
    names, third_party = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    for module in third_party:  # once: not ours to test, and slow
        importlib.import_module(module)
    loaded = sorted(m for m in sys.modules if m == "ctxfusion" or m.startswith("ctxfusion."))
    assert not loaded, f"ctxfusion modules loaded before the forks: {loaded}"
    failures = {}
    for name in names:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            status, message = 0, ""
            try:
                if name.rpartition(".")[2] == "__main__":  # runs the command: ask its version
                    sys.argv = [name, "--version"]
                    sys.stdout = io.StringIO()
                importlib.import_module(name)
            except SystemExit as exc:
                if exc.code not in (0, None):
                    status, message = 1, f"SystemExit({exc.code!r})"
            except BaseException:
                status, message = 1, traceback.format_exc()
            os.write(write, message.encode())
            os._exit(status)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            message = pipe.read().decode()
        _, wait_status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        if code != 0:
            failures[name] = message or f"exit status {code}"
    print(json.dumps(failures))
""")


@cache
def _import_failures() -> dict[str, str]:
    """Import every module alone (see the module docstring): {module: traceback} of failures."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_DIR.parent), *filter(None, [env.get("PYTHONPATH")])])
    third_party = third_party_imports(MODULES, PACKAGE)
    command = [sys.executable, "-c", _IMPORT_EACH, json.dumps(sorted(MODULES)),
               json.dumps(third_party)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"the import runner failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a clean child per module")
@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_alone(module: str) -> None:
    failure = _import_failures().get(module)
    assert failure is None, f"import {module} in a fresh interpreter failed:\n{failure}"


def test_no_import_cycles() -> None:
    graph = import_graph(MODULES)
    cycles = import_cycles(graph)
    found = [describe(c, graph, MODULES) for c in cycles]
    assert not found, ("import cycles (break them: move the shared names down, the registry "
                       "above what it registers; a deferred import does not hide one):\n"
                       + "\n".join(found))


def test_cycle_finder_sees_deferred_imports_not_type_checking(tmp_path: Path) -> None:
    """The rules of the graph on a toy package: a deferred import closes a cycle, an import
    under ``if TYPE_CHECKING:`` does not, ``from pkg import name`` reaches ``pkg``."""
    files = {
        "__init__.py": "from toy.a import A\n",
        "a.py": "from .b import B\nA = 1\n",
        "b.py": "def f():\n    from toy import a\nB = 2\n",  # deferred: b -> toy, toy.a
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import toy.d\n",
        "d.py": "import toy.c\n",
        "e.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    import toy.f\n",
        "f.py": "from . import e\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    modules = find_modules(tmp_path, "toy")
    graph = import_graph(modules)
    assert graph["toy.b"] == {"toy": 2, "toy.a": 2}
    assert graph["toy.c"] == {}
    assert import_cycles(graph) == [["toy", "toy.a", "toy.b"], ["toy.e", "toy.f"]]
