"""docs/architecture.md stays true: its layer table is checked against the imports the code really makes.

Every module of the package is in the table once; a module imports only from its own layer or lower ones (read from
the code with ``ast``, imports inside functions included); nothing below the façade imports ``_decoder``; and the
import graph has no cycles.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "gpudecode"


def _layers() -> dict[str, int]:
    """Module -> layer number (0 = top) from the table under 'Modules by layer'."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("## Modules by layer", 1)[1].split("\n\n", 2)[1]
    layers: dict[str, int] = {}
    rows = [r for r in table.splitlines() if r.startswith("|") and "`" in r]
    for depth, row in enumerate(rows):
        for name in re.findall(r"`([^`]+)`", row):
            layers[name.replace("/", ".")] = depth
    return layers


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        name = ".".join(rel.parts)
        if name == "_backends.__init__":
            continue
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports (``gpudecode.X`` and ``from gpudecode import X``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gpudecode"):
            mod = node.module.removeprefix("gpudecode").lstrip(".")
            if mod:
                found.add(mod)
            else:  # from gpudecode import samplers / VideoDecoder ...
                found.update(a.name for a in node.names if a.name in {"samplers", "data"})
                if any(a.name not in {"samplers", "data"} for a in node.names):
                    found.add("__init__")
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("gpudecode.") for a in node.names if a.name.startswith("gpudecode."))
    return found


def test_every_module_is_in_the_table_once():
    layers, modules = _layers(), _modules()
    assert set(layers) == set(modules), (set(modules) - set(layers), set(layers) - set(modules))


def test_imports_point_down_and_never_at_the_facade():
    layers, modules = _layers(), _modules()
    wrong = []
    for name, path in modules.items():
        for dep in _imports(path):
            if dep == name or dep not in layers:
                continue
            if layers[dep] < layers[name]:
                wrong.append(f"{name} (layer {layers[name]}) imports {dep} (layer {layers[dep]})")
            if dep == "_decoder" and layers[name] > layers["_decoder"]:
                wrong.append(f"{name} imports the façade")
    assert not wrong, wrong


def test_no_import_cycles():
    modules = _modules()
    graph = {name: {d for d in _imports(p) if d in modules and d != name} for name, p in modules.items()}
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        assert node not in stack, " -> ".join([*stack, node])
        if node in done:
            return
        for dep in graph[node]:
            if dep != "__init__":  # the package imports its own public modules
                visit(dep, [*stack, node])
        done.add(node)

    for name in graph:
        visit(name, [])


def test_package_imports_stay_within_each_module_s_all():
    """Inside the package, ``from gpudecode._x import name`` names only what ``_x`` exports in ``__all__``."""
    import importlib

    past = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gpudecode."):
                exported = set(getattr(importlib.import_module(node.module), "__all__", ()))
                past += [f"{name}: {node.module}.{a.name}" for a in node.names if a.name not in exported]
    assert not past, past
