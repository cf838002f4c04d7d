"""No import cycle inside tfminv/: module-level imports only, read statically with ast.

Imports inside functions are how the package defers TensorFlow and do not count; neither do
imports under `if TYPE_CHECKING:`. `from pkg import name` is an edge to `pkg.name` when that is
a module of the package, otherwise to `pkg` (its __init__)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "tfminv"


def _modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _every_import(tree: ast.AST):
    """Every import node, in functions too, except under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _every_import(ast.Module(body=[child], type_ignores=[]))
        else:
            yield from _every_import(node)


def _module_level_imports(tree: ast.Module):
    """Import nodes run when the module is imported: the top level and the bodies of top-level
    if/try/with blocks (not functions, not classes' methods, not `if TYPE_CHECKING:`)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                stack += node.body
            stack += node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody
            for h in node.handlers:
                stack += h.body
        elif isinstance(node, (ast.With, ast.ClassDef)):
            stack += node.body


def import_graph(root: Path = ROOT, package: str = PACKAGE,
                 deferred: bool = False) -> dict[str, set[str]]:
    """module -> the package's modules it imports at module level (with `deferred`, also
    inside functions)."""
    imports = _every_import if deferred else _module_level_imports
    mods = _modules(root, package)
    graph = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[:len(anchor) - node.level + (1 if is_pkg else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            for t in targets:
                while t and t not in mods:  # `import tfminv.x.y` binds tfminv.x.y's module
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each sorted."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_finder_sees_a_cycle_and_ignores_function_local_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("import pkg.c\n")
    (pkg / "c.py").write_text("from pkg.a import thing\n")
    (pkg / "d.py").write_text("def f():\n    from pkg import a\n")
    (pkg / "e.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from pkg import d\n")
    graph = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert graph["pkg.d"] == set() and graph["pkg.e"] == set()
    assert import_graph(tmp_path, "pkg", deferred=True)["pkg.e"] == set()
    (pkg / "c.py").write_text("def g():\n    from pkg.a import thing\n")
    assert find_cycles(import_graph(tmp_path, "pkg")) == []
    assert find_cycles(import_graph(tmp_path, "pkg", deferred=True)) == [
        ["pkg.a", "pkg.b", "pkg.c"]]


def test_no_import_cycle_inside_tfminv():
    cycles = find_cycles(import_graph())
    assert not cycles, "module-level import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


CLOSED_CIRCLES = (("tfminv.models.classifier", "tfminv.models.inverter"),
                  ("tfminv.reporting.inversion", "tfminv.results"))


def test_closed_circles_stay_closed_through_deferred_imports_too():
    """A function-local import defers a module's cost but a circle through it still ties the two
    modules together. These two were such circles (shared shape helpers now live in
    models.shapes; reporting takes results without importing them): no path back either way.
    (Other function-local circles, e.g. a package facade deferring its TensorFlow half, are
    the project's way of deferring TensorFlow and are not policed here.)"""
    cycles = find_cycles(import_graph(deferred=True))
    tied = [pair for pair in CLOSED_CIRCLES for c in cycles if set(pair) <= set(c)]
    assert not tied, f"import circles again (counting function-local imports): {tied}"
