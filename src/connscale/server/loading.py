"""Find the app to serve from a target string: ``package.module:attribute`` or ``file.py:attr``.

Every way a target can be wrong (no colon, a missing file or module, a missing attribute,
something that is not an app, an import that raises) is one ``AppLoadError`` whose message
names what is wrong, so ``connscale serve --app`` prints one line and exits 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from connscale.core.protocol.surface import Surface
from connscale.errors import AppLoadError

__all__ = ["as_surface", "load_app", "load_object"]

_SURFACE_METHODS = ("capabilities", "listing", "call_tool", "read_resource", "get_prompt", "watch")


def load_app(target: str) -> Surface:
    """Import ``target`` and return the app it names, ready to serve."""
    return as_surface(load_object(target), target)


def load_object(target: str) -> Any:
    """Import ``target`` and return the object it names, as it is (not yet a surface)."""
    module_part, sep, attribute = target.rpartition(":")
    if not sep or not module_part or not attribute:
        raise AppLoadError(
            f"--app {target!r}: expected package.module:attribute or path/to/file.py:attribute"
        )
    module = _import(target, module_part)
    value: Any = module
    for name in attribute.split("."):
        if not hasattr(value, name):
            raise AppLoadError(f"--app {target!r}: {module_part} has no attribute {attribute!r}")
        value = getattr(value, name)
    return value


def _import(target: str, module_part: str) -> Any:
    is_path = module_part.endswith(".py") or "/" in module_part or "\\" in module_part
    try:
        if is_path:
            path = Path(module_part)
            if not path.is_file():
                raise AppLoadError(f"--app {target!r}: no such file {module_part}")
            name = "_connscale_app_" + path.stem
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise AppLoadError(f"--app {target!r}: cannot load {module_part} as Python")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            # The file's own folder first, as `python file.py` would have it.
            sys.path.insert(0, str(path.resolve().parent))
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(module_part)
    except AppLoadError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and module_part.startswith(exc.name):
            raise AppLoadError(f"--app {target!r}: no module named {exc.name!r}") from exc
        raise AppLoadError(f"--app {target!r}: importing it failed: {exc}") from exc
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppLoadError(
            f"--app {target!r}: importing it raised {type(exc).__name__}: {exc}"
        ) from exc


def as_surface(value: Any, target: str = "app") -> Surface:
    """``value`` as something to serve: an App (or any surface), an object that makes one
    (``__connscale_surface__``), or a server written for the official MCP SDK (its
    ``MCPServer`` or 1.x ``FastMCP``, served by ``connscale.app.sdk``)."""
    if _is_surface(value):
        return value  # type: ignore[no-any-return]
    adapted = getattr(value, "__connscale_surface__", None)
    if callable(adapted):
        return adapted()  # type: ignore[no-any-return]
    # Recognised only through modules already imported (by the user's file): the SDK is
    # never imported here.
    from connscale.app import sdk

    if sdk.is_sdk_server(value):
        return sdk.sdk_surface(value, target=target)
    if sdk.is_sdk_lowlevel_server(value):
        raise AppLoadError(
            f"--app {target!r}: the SDK's low-level Server is not served by connscale; "
            "point --app at the MCPServer (SDK 2.x) or FastMCP (SDK 1.x) object instead"
        )
    raise AppLoadError(
        f"--app {target!r}: {type(value).__name__} is not a connscale App "
        '(build one with connscale.App("name")) nor an official MCP SDK server object'
    )


def _is_surface(value: Any) -> bool:
    return all(callable(getattr(value, name, None)) for name in _SURFACE_METHODS) and hasattr(
        value, "info"
    )
