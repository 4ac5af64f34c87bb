"""Layering: each layer imports only from the layers before it (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "connscale"

# Module prefix -> layer number. A module may import from layers <= its own.
LAYERS: list[tuple[str, int]] = [
    ("connscale._version", 0),
    ("connscale._hot_path", 0),  # which modules run compiled (standard library only)
    ("connscale.errors", 0),
    ("connscale.clock", 0),
    ("connscale.core", 1),
    ("connscale.memory", 2),
    ("connscale.gc", 2),
    ("connscale.monitor", 2),
    ("connscale.prometheus", 2),
    ("connscale.profile", 2),
    ("connscale.engines", 3),
    ("connscale.app", 4),
    ("connscale.server", 5),
    ("connscale.loadgen", 6),
    ("connscale.bench", 6),
    ("connscale.report", 6),
    ("connscale.locust", 6),  # the optional Locust users (imports locust, hence gevent)
    ("connscale.cli", 7),
    ("connscale.pytest_plugin", 7),
    ("connscale.testing", 7),
    ("connscale.__main__", 7),
    ("connscale", 8),  # the package __init__ re-exports everything
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS:
        matches = module == prefix or module.startswith(prefix + ".")
        if matches and (best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def absolute_module(path: Path, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` names, relative ones (``from ..core import x``) made
    absolute the way Python resolves them, from the importing module's package."""
    if node.level == 0:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()  # a module's relative imports start from its package
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(path, node)
            found.add(module)
            if node.module is None:  # `from . import x`: x may be a submodule
                found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "connscale" or name.startswith("connscale.")}


def test_layers_import_only_downwards() -> None:
    violations = []
    for path in SRC.rglob("*.py"):
        own = module_name(path)
        own_layer = layer_of(own)
        assert own_layer is not None, f"{own} is in no layer: add it to LAYERS and the docs"
        for imported in imported_modules(path):
            if imported == "connscale" and own != "connscale":
                violations.append(f"{own} imports the top package; import the submodule")
                continue
            other = layer_of(imported)
            if other is not None and other > own_layer:
                violations.append(f"{own} (layer {own_layer}) imports {imported} (layer {other})")
    assert not violations, "\n".join(violations)


def test_core_does_no_io() -> None:
    forbidden = {"socket", "select", "selectors", "asyncio", "threading", "subprocess"}
    for path in (SRC / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            bad = forbidden.intersection(names)
            assert not bad, f"{path.name} imports {bad}: the core stays free of I/O"


def test_relative_imports_are_checked_like_absolute_ones() -> None:
    """``from ..server import x`` in the core is the same violation as the absolute form."""

    def resolved(module_path: str, source: str) -> str:
        node = ast.parse(source).body[0]
        assert isinstance(node, ast.ImportFrom)
        return absolute_module(SRC / module_path, node)

    assert resolved("core/connection.py", "from ..server import build") == "connscale.server"
    assert resolved("core/connection.py", "from .timers import TimerWheel") == (
        "connscale.core.timers"
    )
    assert resolved("core/protocol/__init__.py", "from . import mcp") == "connscale.core.protocol"
    assert resolved("core/protocol/mcp.py", "from ...app import App") == "connscale.app"
    assert layer_of(resolved("core/connection.py", "from ..server import build")) == 5
