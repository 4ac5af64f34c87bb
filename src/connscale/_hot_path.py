"""The modules compiled with mypyc (``make compile``), and whether this process runs them so.

Standard library only: the build script loads this file before anything is installed.
The list is here, in one place, for the build, the test guard and the benchmarks' reports.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

__all__ = ["HOT_PATH_MODULES", "compiled_modules", "mode", "source_file", "stale_modules"]

#: What one request goes through, start to end, on the epoll engine: compiled, these run
#: about twice as fast. Modules that define ``msgspec.Struct``s, the session table (whose
#: accessors are generated at run time) and the token sealer (pickled to spawned workers;
#: its work is AES-GCM in OpenSSL already) stay interpreted.
HOT_PATH_MODULES: Final = (
    "connscale.core.connection",
    "connscale.core.timers",
    "connscale.core._id_index",
    "connscale.core._intern",
    "connscale.core.protocol.httpwire",
    "connscale.core.protocol.http",
    "connscale.core.protocol.mcp",
    "connscale.core.protocol.stateless",
    "connscale.core.protocol.jsonrpc",
    "connscale.engines.epoll",
)

_SRC: Final = Path(__file__).resolve().parents[1]


def source_file(module: str) -> Path:
    """The ``.py`` file of a hot-path module in this source tree."""
    return _SRC.joinpath(*module.split(".")).with_suffix(".py")


def compiled_modules() -> list[str]:
    """The hot-path modules that Python would import from a compiled extension."""
    found = []
    for module in HOT_PATH_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin is not None and not spec.origin.endswith(".py"):
            found.append(module)
    return found


def mode() -> str:
    """How this process runs the hot path, as the server, the test run and the benchmarks
    say it: "compiled, N modules", "interpreted", or "partly compiled, N of M modules"."""
    compiled = len(compiled_modules())
    if compiled == len(HOT_PATH_MODULES):
        return f"compiled, {compiled} modules"
    if compiled == 0:
        return "interpreted"
    return f"partly compiled, {compiled} of {len(HOT_PATH_MODULES)} modules"


def stale_modules() -> list[str]:
    """Hot-path modules whose extension is older than their source: it would shadow edits."""
    found = []
    for module in HOT_PATH_MODULES:
        source = source_file(module)
        for built in source.parent.glob(source.stem + ".*.so"):
            if built.stat().st_mtime < source.stat().st_mtime:
                found.append(module)
    return found
