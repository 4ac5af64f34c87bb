"""Wire one worker's serving stack: session table, protocol, HTTP, call runner and engine.

The one place that assembles these pieces, used by the workers and by the test harnesses
(``connscale.testing``), so what tests run is what ``connscale serve`` runs.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence

from connscale.core.connection import ConnectionCore
from connscale.core.protocol.http import McpHttp
from connscale.core.protocol.httpwire import HttpReader
from connscale.core.protocol.mcp import McpProtocol
from connscale.core.protocol.surface import LIST_KINDS, Surface
from connscale.core.protocol.tokens import RevocationTable, SessionSealer
from connscale.core.session import SessionTable, Transport
from connscale.engines._base import Engine, open_files_limit
from connscale.engines._runner import CallRunner
from connscale.engines.aio import AsyncioEngine
from connscale.engines.epoll import EpollEngine
from connscale.engines.stdio import StdioEngine
from connscale.server.config import ServerConfig

__all__ = ["build_engine", "build_stdio_engine", "session_table", "warm_up"]


def session_table(config: ServerConfig) -> SessionTable:
    """A table sized once for the worker's worst case; its columns commit page by page.

    TCP holds one session per connection in the slot numbered like the connection (its
    fd), so the table covers every fd the worker may open and never grows; the engine
    refuses connections over the limit. HTTP sessions are not bound to connections (a slot
    per request in flight or open event stream), so growth stays allowed there.
    """
    if config.transport == "http":
        capacity = max(1024, config.limits.connection_limit(open_files_limit()))
        return SessionTable(capacity, index_by_id=True)
    capacity = max(1024, open_files_limit())
    # No header carries a TCP session's id: it is drawn only if something reads it.
    return SessionTable(capacity, max_capacity=capacity, addressed=True, ids_on_demand=True)


def build_engine(
    config: ServerConfig,
    surface: Surface,
    listener: socket.socket,
    *,
    key: bytes | None = None,
    previous_keys: Sequence[bytes] = (),
    revoked: RevocationTable | None = None,
    clock: Callable[[], float] | None = None,
    wall_clock: Callable[[], float] | None = None,
) -> Engine:
    """The engine ``config`` asks for, serving ``surface`` on ``listener``.

    ``key`` seals HTTP session ids and signs list cursors (every worker gets the same one;
    every server of a fleet too, from its session key file); ``previous_keys`` still open
    what they sealed or signed (a key rotation); ``revoked`` is the table of deleted
    sessions (shared between workers); ``clock`` drives the timeouts and ``wall_clock``
    the session expiry (fake clocks in tests).
    """
    http = config.transport == "http"
    protocol = McpProtocol(
        surface,
        session_table(config),
        limits=config.limits,
        transport=Transport.HTTP if http else Transport.TCP,
        key=key,
        previous_keys=previous_keys,
    )
    runner = CallRunner(surface)
    handler = None
    if http:
        sealer = SessionSealer(
            key,
            previous=previous_keys,
            max_age=config.session_max_age,
            clock=wall_clock or time.time,
        )
        handler = McpHttp(
            protocol,
            sealer=sealer,
            revoked=revoked or RevocationTable(config.revocation_capacity),
            path=config.http_path,
            stream_responses=config.sse_responses,
            allowed_origins=config.allowed_origins,
            allowed_hosts=config.host_names(),
            bearer_token=config.bearer_token,
        )
    keepalive = config.http_keepalive_timeout
    if config.engine == "epoll":
        return EpollEngine(
            listener, protocol, runner, http=handler, keepalive_timeout=keepalive, clock=clock
        )
    return AsyncioEngine(
        listener, protocol, runner, http=handler, keepalive_timeout=keepalive, clock=clock
    )


def build_stdio_engine(
    config: ServerConfig,
    surface: Surface,
    *,
    input_fd: int = 0,
    output_fd: int = 1,
    clock: Callable[[], float] | None = None,
) -> StdioEngine:
    """One session over stdin and stdout (or the given fds)."""
    protocol = McpProtocol(
        surface,
        SessionTable(16, max_capacity=16),
        limits=config.limits,
        transport=Transport.STDIO,
    )
    return StdioEngine(
        protocol, CallRunner(surface), input_fd=input_fd, output_fd=output_fd, clock=clock
    )


class _Sink:
    """A wire that keeps nothing: what ``warm_up`` drives its throwaway core with."""

    def __init__(self, core: ConnectionCore) -> None:
        self.core = core

    def write(self, connection: int, data: bytes) -> int:
        return 0

    def set_reading(self, connection: int, reading: bool) -> None:
        pass

    def disconnect(self, connection: int, flush: bool) -> None:
        self.core.closed(connection)

    def call_soon(self) -> None:
        pass

    def wake_at(self, when: float) -> None:
        pass


_WARM_UP_LINES = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"warm-up","version":"0"}}}\n'
    b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
    b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'
)


def warm_up(config: ServerConfig, surface: Surface, *, engine: bool = True) -> None:
    """Run one throwaway request path before serving, so that what the first requests would
    build (imported modules, OpenSSL's tables, the app's cached listings, parsers,
    encoders) is built before the server listens; before forking workers, it is built
    once and shared. ``engine``: also build (and drop) an engine, for its imports: a
    supervisor's workers build theirs later; a single process builds its own next."""
    listener = socket.socket()
    try:
        protocol = McpProtocol(surface, SessionTable(16, max_capacity=16), limits=config.limits)
        core = ConnectionCore(protocol, CallRunner(surface), 4, clock=time.monotonic)
        core.attach(_Sink(core))
        if core.open(0):
            core.receive(0, _WARM_UP_LINES)
            core.closed(0)
        for kind in LIST_KINDS:
            surface.listing(kind)
        if config.transport == "http":  # what only HTTP uses stays out of a TCP server
            sealer = SessionSealer(max_age=config.session_max_age)
            sealer.unseal(sealer.seal(b"warm-up"))
            reader = HttpReader(config.limits.max_header_bytes, config.limits.max_frame_bytes)
            reader.feed(b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        if engine:
            build_engine(config, surface, listener)  # the engine's own imports and objects
    finally:
        listener.close()
