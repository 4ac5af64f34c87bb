"""What a benchmark measures: the reference server, the baselines, and the user's own servers.

A ``ServerSpec`` says how to start a server, which protocol the load generator speaks to
it, and how far to take it. ``default_servers`` gives the reference server and the
baselines (``--servers`` picks among them, always honored; ``NAME:PROTOCOL`` picks another
protocol a server speaks, e.g. ``connscale:mcp-listen mcp-sdk:mcp-listen`` for MCP
2026-07-28 listen streams side by side); ``parse_target`` reads the repeatable
``--target NAME:PROTOCOL[/PATH]:PORT:COMMAND`` that puts a user's servers beside them in
the same run.
"""

from __future__ import annotations

import importlib.util
import math
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connscale.bench.baselines import (
    ALSO_SPEAKS,
    BASELINE_PROTOCOLS,
    HTTP_BASELINES,
    SDK_MAX_LISTEN_STREAMS,
    TCP_BASELINES,
    missing,
)
from connscale.bench.config import (
    BASELINE_MAX_CONNECTIONS,
    CONNECTIONS_PER_WORKER,
    DEFAULT_MAX_CONNECTIONS,
)
from connscale.errors import ConfigurationError
from connscale.loadgen.protocols import PROTOCOL_NAMES

#: Protocols carried over HTTP (the rest speak straight over TCP).
HTTP_PROTOCOLS = frozenset({"mcp-http", "mcp-listen", "mcp-stateless", "websocket", "sse", "http"})
#: What the reference server speaks (``--servers connscale:PROTOCOL``); the first is TCP's.
REFERENCE_PROTOCOLS = ("mcp", "mcp-http", "mcp-listen", "mcp-stateless")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ServerSpec:
    """A server to measure: its command, the protocol it speaks, and how far to take it."""

    name: str
    argv: tuple[str, ...]
    transport: str = "tcp"
    workers: int = 1
    max_connections: int = BASELINE_MAX_CONNECTIONS
    #: None: the command speaks the ready-file contract; else wait for this port to accept.
    port: int | None = None
    host: str = "127.0.0.1"
    unavailable: str | None = None  # why it cannot run here (recorded, not fatal)
    protocol: str = "mcp"
    path: str | None = None  # HTTP path for websocket, sse, http, mcp-http
    probe: str | None = None  # raw TCP: a line each connection must answer
    call: str | None = None  # MCP: the tools/call params (JSON) its traffic phases send
    #: Capped below the run's ladder (fewer than three of its plateaus fit): measure at the
    #: ladder scaled down to ``max_connections`` instead, so the server still gets a fit.
    scale_plateaus: bool = False


def transport_of(protocol: str) -> str:
    return "http" if protocol in HTTP_PROTOCOLS else "tcp"


def default_servers(
    *,
    transport: str = "tcp",
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    names: Sequence[str] | None = None,
    quick: bool = False,
) -> list[ServerSpec]:
    """The reference server and the baselines; ``names`` picks among them.

    Without ``names``: the reference server for ``transport`` and that transport's MCP
    baselines. ``names`` may name any baseline (WebSocket and raw TCP ones included),
    ``connscale`` for the reference server, or ``all``; ``NAME:PROTOCOL`` measures a server
    in another protocol it speaks (``connscale:mcp-listen``, ``mcp-sdk:mcp-stateless``).
    """
    python = sys.executable
    workers = 2 if quick else max(1, math.ceil(max_connections / CONNECTIONS_PER_WORKER))
    known = ("connscale", *BASELINE_PROTOCOLS)
    if names is None:
        chosen = ["connscale", *(TCP_BASELINES if transport == "tcp" else HTTP_BASELINES)]
    else:
        unknown = [n for n in names if n.partition(":")[0] not in (*known, "all")]
        if unknown:
            raise ConfigurationError(
                f"unknown server(s) {unknown}; choose from {', '.join(known)} or all"
            )
        chosen = list(known) if "all" in names else list(dict.fromkeys(names))
    specs = []
    for entry in chosen:
        name, _, protocol = entry.partition(":")
        if name == "connscale":
            default = REFERENCE_PROTOCOLS[0 if transport == "tcp" else 1]
            protocol = _spoken(name, protocol or default, REFERENCE_PROTOCOLS)
            specs.append(_reference_server(protocol, workers, max_connections))
            continue
        own = BASELINE_PROTOCOLS[name]
        protocol = _spoken(name, protocol or own, (own, *ALSO_SPEAKS.get(name, ())))
        cap = min(max_connections, BASELINE_MAX_CONNECTIONS)
        if name == "mcp-sdk" and protocol == "mcp-listen":
            cap = min(cap, SDK_MAX_LISTEN_STREAMS)
        specs.append(
            ServerSpec(
                name=name if protocol == own else f"{name}-{protocol.removeprefix('mcp-')}",
                argv=(python, "-m", "connscale.bench.baselines", name, "--port", "0"),
                transport=transport_of(protocol),
                max_connections=cap,
                unavailable=missing(name, protocol),
                protocol=protocol,
                probe="ping" if protocol == "tcp" else None,
                path="/events" if protocol == "sse" else None,
                scale_plateaus=protocol == "mcp-listen",
            )
        )
    return specs


def _spoken(name: str, protocol: str, speaks: Sequence[str]) -> str:
    if protocol not in speaks:
        raise ConfigurationError(
            f"{name} does not speak {protocol!r}; choose from {', '.join(speaks)}"
        )
    return protocol


def _reference_server(protocol: str, workers: int, max_connections: int) -> ServerSpec:
    """``connscale serve`` for ``protocol``: epoll for TCP and the 2026-07-28 protocols."""
    transport = transport_of(protocol)
    engine = "epoll" if protocol != "mcp-http" else None
    python = sys.executable
    serve = [python, "-m", "connscale", "serve", "--transport", transport, "--port", "0"]
    serve += ["--workers", str(workers)]
    if engine:
        serve += ["--engine", engine]
    if protocol == "mcp-stateless":
        # Held idle between requests: a held connection is the point (as for the baselines).
        serve += ["--http-keepalive-timeout", "3600"]
    suffix = "epoll" if protocol == "mcp" else protocol.removeprefix("mcp-")
    return ServerSpec(
        name=f"connscale-{suffix}",
        argv=tuple(serve),
        transport=transport,
        workers=workers,
        max_connections=max_connections,
        unavailable=_reference_server_missing(),
        protocol=protocol,
    )


def _default_name(argv: Sequence[str]) -> str:
    """A file-safe name from a command: ``python /a/b/server.py 18001`` -> ``server.py``,
    ``python -m my.app`` -> ``my.app``, ``./myserver --fast`` -> ``myserver``."""
    words = list(argv)
    if words and Path(words[0]).name.startswith("python"):
        words = words[1:]
        if len(words) >= 2 and words[0] == "-m":
            words = words[1:]
        elif words[:1] == ["-c"]:
            return "python-c"  # the code itself makes no name
    name = next((Path(word).name for word in words if not word.startswith("-")), "")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:64]
    return name or "server"


def custom_server(
    command: str,
    port: int,
    *,
    transport: str | None = None,
    protocol: str = "mcp",
    name: str | None = None,
    path: str | None = None,
    probe: str | None = None,
    max_connections: int,
) -> ServerSpec:
    """A user's own server: started from ``command``, measured once ``port`` accepts."""
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise ConfigurationError(f"cannot split the command {command!r}: {exc}") from None
    if not argv:
        raise ConfigurationError("the target's command is empty")
    if not 0 < port < 65536:
        raise ConfigurationError(f"the target's port must be 1..65535, not {port}")
    if protocol not in PROTOCOL_NAMES:
        raise ConfigurationError(
            f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOL_NAMES)}"
        )
    if transport is not None and protocol == "mcp" and transport == "http":
        protocol = "mcp-http"  # the old --transport http with --target-cmd
    if name is not None and not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"a target name is letters, digits, '.', '_' and '-' (up to 64), not {name!r}"
        )
    return ServerSpec(
        name=name or _default_name(argv),
        argv=argv,
        transport=transport_of(protocol),
        max_connections=max_connections,
        port=port,
        protocol=protocol,
        path=path,
        probe=probe,
    )


TARGET_FORMAT = "NAME:PROTOCOL[/PATH]:PORT:COMMAND"


def parse_target(text: str, *, max_connections: int, probe: str | None = None) -> ServerSpec:
    """Read ``NAME:PROTOCOL[/PATH]:PORT:COMMAND`` (the command is the rest, colons and all).

    Example: ``chat:websocket/ws:18001:python chat.py --port 18001``.
    """
    parts = text.split(":", 3)
    if len(parts) != 4:
        raise ConfigurationError(f"--target must be {TARGET_FORMAT}, not {text!r}")
    name, protocol_text, port_text, command = (part.strip() for part in parts)
    protocol, slash, path = protocol_text.partition("/")
    if not port_text.isdigit():
        raise ConfigurationError(f"--target {name!r}: the port must be a number, not {port_text!r}")
    return custom_server(
        command,
        int(port_text),
        protocol=protocol,
        name=name,
        path="/" + path if slash else None,
        probe=probe if protocol == "tcp" else None,
        max_connections=max_connections,
    )


def sdk_app_servers(
    app: str, *, call: str, max_connections: int, name: str | None = None
) -> list[ServerSpec]:
    """One SDK server object (``file.py:mcp``) twice, side by side: on the SDK's own server
    (uvicorn, Streamable HTTP, keep-alive held) and on connscale, one worker each; their
    traffic phases send ``call`` (the ``tools/call`` params, JSON) to both."""
    module_part, sep, attribute = app.rpartition(":")
    if not sep or not module_part or not attribute:
        raise ConfigurationError(f"--app must be path/to/file.py:attribute, not {app!r}")
    stem = name or re.sub(r"[^A-Za-z0-9._-]+", "_", Path(module_part).stem).strip("._-")[:40]
    stem = stem or "app"
    python = sys.executable
    limit = min(max_connections, BASELINE_MAX_CONNECTIONS)
    sdk = ServerSpec(
        name=f"{stem}-on-sdk",
        argv=(python, "-m", "connscale.bench.baselines", "mcp-sdk", "--port", "0", "--app", app),
        transport="http",
        max_connections=limit,
        unavailable=missing("mcp-sdk"),
        protocol="mcp-http",
        call=call,
    )
    serve = (python, "-m", "connscale", "serve", "--transport", "http", "--port", "0")
    ours = ServerSpec(
        name=f"{stem}-on-connscale",
        argv=(*serve, "--workers", "1", "--app", app),
        transport="http",
        max_connections=limit,
        unavailable=_reference_server_missing(),
        protocol="mcp-http",
        call=call,
    )
    return [sdk, ours]


def _reference_server_missing() -> str | None:
    if importlib.util.find_spec("connscale.cli.serve") is None:
        return "`connscale serve` is not part of this build"
    return None


__all__ = [
    "HTTP_PROTOCOLS",
    "REFERENCE_PROTOCOLS",
    "TARGET_FORMAT",
    "ServerSpec",
    "custom_server",
    "default_servers",
    "parse_target",
    "sdk_app_servers",
    "transport_of",
]
