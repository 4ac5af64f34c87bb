"""Engines on loopback for fault tests: a server in a thread, raw clients, a served CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connscale import testing
from connscale.core.protocol.http import McpHttpHandler
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import McpProtocol
from connscale.core.session import SessionTable, Transport
from connscale.engines._base import ToolInvoker
from connscale.engines.aio import AsyncioEngine
from connscale.engines.epoll import EpollEngine
from connscale.server.app import build_registry
from connscale.testing import engine_in_thread

INIT = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
)
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'


def ping(request_id: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % request_id


def tool_call(request_id: int, name: str, arguments: dict[str, Any]) -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    return json.dumps(message).encode() + b"\n"


@dataclass
class Running:
    port: int
    engine: EpollEngine | AsyncioEngine
    loop: asyncio.AbstractEventLoop

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function()`` on the server's loop and return its result."""

        async def wrapped() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=5)

    def statistics(self) -> Any:
        return self.call(self.engine.statistics)


@contextlib.contextmanager
def running(
    engine_name: str,
    transport: str = "tcp",
    limits: ServerLimits | None = None,
    *,
    invoker: ToolInvoker | None = None,
    keepalive_timeout: float | None = None,
) -> Iterator[Running]:
    """An engine serving on 127.0.0.1 from a background thread, stopped on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    http = transport == "http"
    protocol = McpProtocol(
        SessionTable(index_by_id=http),
        tools=build_registry().descriptors(),
        limits=limits or ServerLimits(),
        transport=Transport.HTTP if http else Transport.TCP,
    )
    handler = McpHttpHandler(protocol) if http else None
    invoke = invoker or build_registry().invoke
    engine: EpollEngine | AsyncioEngine
    if engine_name == "epoll":
        engine = EpollEngine(
            listener, protocol, invoke, http=handler, keepalive_timeout=keepalive_timeout
        )
    else:
        engine = AsyncioEngine(
            listener, protocol, invoke, http=handler, keepalive_timeout=keepalive_timeout
        )
    try:
        with engine_in_thread(engine) as loop:
            yield Running(listener.getsockname()[1], engine, loop)
    finally:
        listener.close()


class LineClient:
    """A blocking newline-JSON client with a socket timeout (tests never hang)."""

    def __init__(self, port: int, *, timeout: float = 5.0, receive_buffer: int = 0) -> None:
        self.sock = socket.socket()
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the server closed the connection."""
        while b"\n" not in self._buffer:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def initialize(self) -> None:
        self.send(INIT)
        reply = self.receive()
        assert reply is not None and "result" in reply
        self.send(INITIALIZED)

    def ping(self, request_id: int = 1) -> bool:
        self.send(ping(request_id))
        reply = self.receive()
        return reply is not None and reply.get("id") == request_id and reply["result"] == {}

    def closed_by_server(self) -> bool:
        """True once the server has closed (EOF or reset) within the socket timeout."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@contextlib.contextmanager
def served(
    tmp_path: Path, *arguments: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """``connscale serve ARGS`` in a subprocess, ready; stopped on exit if still running."""
    with testing.served(tmp_path, arguments, env=env) as running:
        yield running
