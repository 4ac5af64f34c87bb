"""Hostile-input fixtures: the sans-I/O core as a byte pipe, and engines on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from connscale.core.protocol.framing import split_frames
from connscale.core.protocol.http import McpHttpHandler
from connscale.core.protocol.jsonrpc import INVALID_REQUEST, encode_error
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import McpProtocol, ToolCall
from connscale.core.session import SessionTable, Transport
from connscale.engines.aio import AsyncioEngine
from connscale.engines.epoll import EpollEngine
from connscale.server.app import build_registry
from connscale.testing import engine_in_thread

ENGINES = ["epoll", "asyncio"]
TOOLS = build_registry().descriptors()
INIT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "hostile", "version": "1"},
    },
}
INITIALIZED: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def line(message: dict[str, Any] | list[Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def ping(request_id: int | str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "ping"}


def echo(request_id: int | str, text: str = "hi") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}},
    }


class Pipe:
    """One TCP session on the sans-I/O core: bytes in, decoded replies out (what an engine does).

    Tool calls are answered at once unless ``hold_tools``; held ones wait in ``held``.
    """

    def __init__(self, limits: ServerLimits | None = None, *, hold_tools: bool = False) -> None:
        self.protocol = McpProtocol(SessionTable(), tools=TOOLS, limits=limits or ServerLimits())
        self.slot = self.protocol.open_session()
        self.pending: bytearray | None = None
        self.hold_tools = hold_tools
        self.held: list[ToolCall] = []
        self.closed = False
        self.max_pending_bytes = 0

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        assert not self.closed, "fed after the connection was closed"
        frames, self.pending, too_large = split_frames(
            self.pending, data, self.protocol.limits.max_frame_bytes
        )
        self.max_pending_bytes = max(self.max_pending_bytes, len(self.pending or b""))
        replies: list[dict[str, Any]] = []
        for frame in frames:
            outcome = self.protocol.handle_frame(self.slot, frame)
            if isinstance(outcome, ToolCall):
                if self.hold_tools:
                    self.held.append(outcome)
                    continue
                outcome = self.protocol.finish_tool_call(
                    outcome, {"content": [{"type": "text", "text": "ok"}], "isError": False}
                )
            if outcome is not None:
                replies.append(json.loads(outcome))
        if too_large:  # the engines answer this, then close after flushing
            self.close()
            replies.append(json.loads(encode_error(None, INVALID_REQUEST, "frame too large")))
            replies.append({"closed": "frame too large"})
        return replies

    def send(self, *messages: dict[str, Any] | list[Any] | bytes) -> list[dict[str, Any]]:
        data = b"".join(m if isinstance(m, bytes) else line(m) for m in messages)
        return self.feed(data)

    def initialize(self) -> None:
        assert "result" in self.send(INIT)[0]
        assert self.send(INITIALIZED) == []

    def close(self) -> None:
        """The connection ended (EOF, reset, or the server closed it)."""
        self.pending = None
        self.protocol.close_session(self.slot)
        self.closed = True


@dataclass
class Running:
    port: int
    engine: EpollEngine | AsyncioEngine
    protocol: McpProtocol
    loop: asyncio.AbstractEventLoop

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function()`` on the server's loop and return its result."""

        async def wrapped() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=5)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate`` on the server's loop until it holds (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call(predicate):
                return True
            time.sleep(0.01)
        return False


@contextlib.contextmanager
def running(
    engine_name: str,
    transport: str = "tcp",
    *,
    limits: ServerLimits | None = None,
    **http_options: Any,
) -> Iterator[Running]:
    """An engine serving on 127.0.0.1 from a background thread; stopped on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    http = transport == "http"
    protocol = McpProtocol(
        SessionTable(index_by_id=http),
        tools=TOOLS,
        limits=limits or ServerLimits(),
        transport=Transport.HTTP if http else Transport.TCP,
    )
    registry = build_registry()
    handler = McpHttpHandler(protocol, **http_options) if http else None
    engine: EpollEngine | AsyncioEngine
    if engine_name == "epoll":
        engine = EpollEngine(listener, protocol, registry.invoke, http=handler)
    else:
        engine = AsyncioEngine(listener, protocol, registry.invoke, http=handler)
    try:
        with engine_in_thread(engine) as loop:
            yield Running(port, engine, protocol, loop)
    finally:
        listener.close()


class LineClient:
    """A raw loopback client for newline-delimited JSON-RPC (bounded by a timeout)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, *messages: dict[str, Any] | list[Any] | bytes) -> None:
        self.sock.sendall(b"".join(m if isinstance(m, bytes) else line(m) for m in messages))

    def receive(self) -> dict[str, Any] | None:
        """The next reply, or None at EOF."""
        while b"\n" not in self.buffer:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buffer += data
        first, self.buffer = self.buffer.split(b"\n", 1)
        reply = json.loads(first)
        assert isinstance(reply, dict)
        return reply

    def call(self, message: dict[str, Any]) -> dict[str, Any] | None:
        self.send(message)
        return self.receive()

    def initialize(self) -> None:
        reply = self.call(INIT)
        assert reply is not None and "result" in reply
        self.send(INITIALIZED)

    def close(self) -> None:
        self.sock.close()


def http_request(
    method: str = "POST",
    body: bytes | dict[str, Any] | list[Any] = b"",
    *,
    headers: dict[str, str] | None = None,
    path: str = "/mcp",
) -> bytes:
    """One HTTP/1.1 request to the MCP endpoint with the headers a good client sends."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    base = {
        "host": "127.0.0.1",
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "content-length": str(len(payload)),
    }
    base.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in base.items())
    return head.encode() + b"\r\n" + payload


def parse_response(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(
        (key.lower(), value) for key, value in (item.split(": ", 1) for item in lines[1:])
    )
    return status, headers, body


def http_exchange(
    port: int, request: bytes, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """Send one request on a fresh connection and read one response (content-length framed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        status, headers, body = parse_response(data)
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body
