"""A server engine running in a background thread's event loop, for loopback tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from connscale.core.protocol.http import McpHttpHandler
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import McpProtocol
from connscale.core.session import SessionTable, Transport
from connscale.engines.aio import AsyncioEngine
from connscale.engines.epoll import EpollEngine
from connscale.server.app import build_registry
from connscale.testing import engine_in_thread


@dataclass
class RunningServer:
    port: int
    engine: EpollEngine | AsyncioEngine
    loop: asyncio.AbstractEventLoop

    def call(self, function: Any) -> Any:
        """Run ``function()`` on the server's loop and return its result."""
        future: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(_wrap(function), self.loop)
        return future.result(timeout=5)


async def _wrap(function: Any) -> Any:
    return function()


def start_server(
    engine_name: str, transport: str, limits: ServerLimits | None = None
) -> Iterator[RunningServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    http = transport == "http"
    protocol = McpProtocol(
        SessionTable(index_by_id=http),
        tools=build_registry().descriptors(),
        limits=limits or ServerLimits(),
        transport=Transport.HTTP if http else Transport.TCP,
    )
    registry = build_registry()
    handler = McpHttpHandler(protocol) if http else None
    engine: EpollEngine | AsyncioEngine
    if engine_name == "epoll":
        engine = EpollEngine(listener, protocol, registry.invoke, http=handler)
    else:
        engine = AsyncioEngine(listener, protocol, registry.invoke, http=handler)
    try:
        with engine_in_thread(engine) as loop:
            yield RunningServer(port, engine, loop)
    finally:
        listener.close()
