"""The import direction of the code base (DESIGN.md, "Where things live"), checked on the source.

Layers, lowest first: ``controller.core`` (pure rules: imports nothing of ours), ``controller.errors``,
``controller.config``, then ``controller.signals`` and ``controller.adapters`` side by side (neither
imports the other), ``controller.reactors``, then ``controller.backtest`` and ``controller.demo``,
then ``controller.cli`` and ``controller.web``. A module may import its own layer's package and any
lower layer, never a higher one. ``detectors`` is statistics only: it imports nothing of the
controller or the workers, and has no import cycle. Nothing in ``controller`` imports ``workers``:
the workers build on the controller and add their commands through an entry point.

Every import counts, those inside functions too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("controller.core",),
    ("controller.errors",),
    ("controller.config",),
    ("controller.signals", "controller.adapters"),
    ("controller.reactors",),
    ("controller.backtest", "controller.demo"),
    ("controller.cli", "controller.web"),
    ("controller.__main__",),
)
FIRST_PARTY = ("controller", "detectors", "workers")


def _package(module: str) -> str | None:
    """The layer package a ``controller`` module belongs to, or None for the package root."""
    for layer in LAYERS:
        for pkg in layer:
            if module == pkg or module.startswith(pkg + "."):
                return pkg
    return None


def _rank(pkg: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if pkg in layer)


def _modules(top: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / top).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """First-party modules imported by ``path`` (``from pkg import name`` counts ``pkg.name`` too)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                if node.level > 1 and path.name == "__init__.py":
                    base = module.split(".")[: -(node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno


def _violations() -> list[str]:
    out: dict[tuple[Path, int], str] = {}  # one finding per import statement
    for top in FIRST_PARTY:
        for module, path in _modules(top):
            if "migrations" in module.split("."):
                continue  # Alembic scripts import the tables they migrate, nothing else
            own = _package(module) if top == "controller" else None
            for target, line in _imports(module, path):
                where = f"{path.relative_to(ROOT)}:{line}: {module} imports {target}"
                add = functools.partial(out.setdefault, (path, line))
                if not target.startswith(FIRST_PARTY):
                    continue
                if top == "detectors" and not target.startswith("detectors"):
                    add(f"{where} (detectors import nothing of the controller or the workers)")
                if top != "controller" or not target.startswith("controller"):
                    if top == "controller" and target.startswith("workers"):
                        add(f"{where} (the controller never imports the workers)")
                    continue
                theirs = _package(target)
                if own is None or theirs is None or own == theirs:
                    continue
                if own == "controller.core":
                    add(f"{where} (core imports nothing of ours but itself)")
                elif _rank(theirs) >= _rank(own):
                    add(f"{where} (upward or sideways: {own} may import only lower layers)")
    return list(out.values())


def _cycles(top: str) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    names = {m for m, _ in _modules(top)}
    for module, path in _modules(top):
        graph[module] = {t for t, _ in _imports(module, path) if t in names and t != module}
    cycles, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif state[nxt] == 0:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [node])
    return cycles


def test_every_import_points_down_the_layers() -> None:
    assert _violations() == []


@pytest.mark.parametrize("top", ["detectors"])
def test_no_import_cycles(top: str) -> None:
    # package __init__ files re-export their own modules: a cycle through them is not a dependency
    cycles = [c for c in _cycles(top) if not any(m.count(".") == 0 or m.endswith("stattests") for m in c)]
    assert cycles == []


def test_the_checker_sees_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself can fail: a core module that imports an adapter is reported."""
    fake = tmp_path / "controller" / "core"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from controller.adapters.store.store import Store\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    found = _violations()
    assert len(found) == 1 and "core imports nothing of ours" in found[0]
