"""What the tests share: MCP messages, the sans-I/O core as a byte pipe, a server in a
thread on loopback, raw line and HTTP clients. One harness for every test directory."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from connscale.app import App
from connscale.clock import FakeClock
from connscale.core.connection import ConnectionCore
from connscale.core.protocol.http import McpHttp
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import Call, McpProtocol, SessionKey
from connscale.core.protocol.surface import Surface
from connscale.core.protocol.tokens import SessionSealer
from connscale.core.session import SessionTable, Transport
from connscale.engines._runner import CallRunner
from connscale.loadgen.protocols.base import CLOSED, READY, Conn
from connscale.server.reference import build_reference_app
from connscale.testing import ServingThread, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]


def load_file(name: str, relative: str) -> ModuleType:
    """The module at ``relative`` (from the repository root), which is not on ``sys.path``:
    a script or a helper of another test folder. Registered as ``name`` in ``sys.modules``,
    where NamedTuples and dataclasses look their module up."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ENGINES = ["epoll", "asyncio"]
TOOLS = list(build_reference_app().listing("tools"))
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
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def line(message: dict[str, Any] | list[Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def ping(request_id: int | str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "ping"}


def tool_call(request_id: int | str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def echo(request_id: int | str, text: str = "hi") -> dict[str, Any]:
    return tool_call(request_id, "echo", {"text": text})


def reference_surface() -> Surface:
    return build_reference_app()


# -- the sans-I/O core as a byte pipe ----------------------------------------------------------


class FakeWire:
    """An engine that records what the core asks of it (and can fake a full kernel buffer)."""

    def __init__(self, core: ConnectionCore) -> None:
        self.core = core
        self.output: dict[int, bytearray] = defaultdict(bytearray)
        self.reading: dict[int, bool] = {}
        self.closed: dict[int, bool] = {}  # connection -> whether it was to be flushed first
        self.buffered: dict[int, int] = {}  # what write() reports as still unsent
        self.turns_asked = 0
        self.wake: float | None = None

    def write(self, connection: int, data: bytes) -> int:
        self.output[connection] += data
        return self.buffered.get(connection, 0)

    def set_reading(self, connection: int, reading: bool) -> None:
        self.reading[connection] = reading

    def disconnect(self, connection: int, flush: bool) -> None:
        self.closed[connection] = flush
        self.core.closed(connection)

    def call_soon(self) -> None:
        self.turns_asked += 1

    def wake_at(self, when: float) -> None:
        self.wake = when


class HeldRunner(CallRunner):
    """Runs calls at once, but holds those named in ``hold`` (all of them when True)."""

    def __init__(self, surface: Surface, hold: set[str] | bool = False) -> None:
        super().__init__(surface)
        self.hold = hold
        self.held: list[Call] = []

    def start(self, call: Call) -> None:
        if self.hold is True or (isinstance(self.hold, set) and call.target in self.hold):
            self.held.append(call)
            return
        super().start(call)

    def answer(self, call: Call, result: Any = None) -> None:
        """Finish a held call (None: a cancelled call, which gets no answer)."""
        self.held.remove(call)
        assert call.channel is not None
        reply = None if result is None else call.protocol.complete(call, result)
        if result is None:
            call.protocol.fail(call, -32603, "cancelled")
        call.channel.finish_call(call, reply)

    def cancel(self, key: SessionKey, request_id: int | str) -> bool:
        for call in self.held:
            if call.key == key and call.request_id == request_id:
                call.cancelled = True
                self.answer(call, None)
                return True
        return super().cancel(key, request_id)


class CorePipe:
    """A ``ConnectionCore`` with a fake wire and a fake clock: connections as byte pipes."""

    def __init__(
        self,
        surface: Surface | None = None,
        *,
        transport: str = "tcp",
        limits: ServerLimits | None = None,
        hold: set[str] | bool = False,
        keepalive_timeout: float | None = None,
        capacity: int = 256,
        max_sessions: int | None = None,
        **http_options: Any,
    ) -> None:
        http = transport == "http"
        self.clock = FakeClock(1000.0)
        self.surface = surface or reference_surface()
        self.protocol = McpProtocol(
            self.surface,
            # As the server builds them: HTTP finds sessions by id; a TCP session's slot is
            # its connection's number.
            SessionTable(
                min(max_sessions or 1024, 1024), max_capacity=max_sessions, index_by_id=True
            )
            if http
            else SessionTable(addressed=True),
            limits=limits or ServerLimits(),
            transport=Transport.HTTP if http else Transport.TCP,
        )
        self.runner = HeldRunner(self.surface, hold)
        handler = None
        if http:
            http_options.setdefault("sealer", SessionSealer(b"k" * 32))
            handler = McpHttp(self.protocol, **http_options)
        self.http_handler = handler
        self.core = ConnectionCore(
            self.protocol,
            self.runner,
            capacity,
            clock=self.clock,
            http=handler,
            max_connections=capacity,
            keepalive_timeout=keepalive_timeout,
        )
        self.wire = FakeWire(self.core)
        self.core.attach(self.wire)
        self._read: dict[int, int] = defaultdict(int)

    def connect(self) -> int:
        """Open a connection on the lowest free id (its recorded output starts afresh)."""
        connection = next(c for c in range(self.core.capacity) if not self.core.kind_of(c))
        assert self.core.open(connection)
        self.wire.output.pop(connection, None)
        self.wire.closed.pop(connection, None)
        self.wire.reading.pop(connection, None)
        self._read.pop(connection, None)
        return connection

    def feed(self, connection: int, data: bytes) -> bytes:
        """Deliver ``data``; what the server sent since the last look."""
        self.core.receive(connection, data)
        return self.take(connection)

    def take(self, connection: int) -> bytes:
        output = self.wire.output[connection]
        new = bytes(output[self._read[connection] :])
        self._read[connection] = len(output)
        return new

    def messages(self, connection: int, data: bytes | None = None) -> list[dict[str, Any]]:
        """The JSON lines the server sent (after feeding ``data``, if given)."""
        raw = self.take(connection) if data is None else self.feed(connection, data)
        return [json.loads(part) for part in raw.split(b"\n") if part.strip()]

    def run_turns(self) -> None:
        while self.core._backlog:
            self.core.run_backlog()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.core.tick(self.clock())

    def is_closed(self, connection: int) -> bool:
        return connection in self.wire.closed and not self.core.kind_of(connection)


class Pipe:
    """One TCP session on the sans-I/O core: messages in, decoded replies out.

    ``hold_tools`` holds every tool call (in ``held``) until the test answers it. When the
    core closes the connection, the replies end with ``{"closed": True}``.
    """

    def __init__(self, limits: ServerLimits | None = None, *, hold_tools: bool = False) -> None:
        self.core_pipe = CorePipe(limits=limits, hold=hold_tools)
        self.protocol = self.core_pipe.protocol
        self.connection = self.core_pipe.connect()
        self.slot = self.core_pipe.core._slot[self.connection]
        self.closed = False

    @property
    def held(self) -> list[Call]:
        return self.core_pipe.runner.held

    @property
    def pending(self) -> object:
        """The partial frame the core holds for this connection, or None."""
        return self.core_pipe.core._line_readers.get(self.connection)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        assert not self.closed, "fed after the connection was closed"
        replies = self.core_pipe.messages(self.connection, data)
        self.core_pipe.run_turns()
        replies += self.core_pipe.messages(self.connection)
        return self._with_close(replies)

    def _with_close(self, replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.closed and self.core_pipe.is_closed(self.connection):
            self.closed = True
            replies.append({"closed": True})
        return replies

    def send(self, *messages: dict[str, Any] | list[Any] | bytes) -> list[dict[str, Any]]:
        return self.feed(b"".join(m if isinstance(m, bytes) else line(m) for m in messages))

    def answer(self, call: Call, result: Any) -> list[dict[str, Any]]:
        self.core_pipe.runner.answer(call, result)
        return self._with_close(self.core_pipe.messages(self.connection))

    def initialize(self) -> None:
        assert "result" in self.send(INIT)[0]
        assert self.send(INITIALIZED) == []

    def eof(self) -> list[dict[str, Any]]:
        self.core_pipe.core.eof(self.connection)
        return self._with_close(self.core_pipe.messages(self.connection))

    def close(self) -> None:
        """The connection ended (a reset)."""
        if not self.closed:
            self.core_pipe.core.closed(self.connection)
        self.closed = True


# -- a real server on loopback -----------------------------------------------------------------


class Running(ServingThread):
    """A server in a thread (see ``connscale.testing.ServingThread``), with test helpers."""

    @property
    def protocol(self) -> McpProtocol:
        return self.engine.core.protocol

    def statistics(self) -> Any:
        return self.call(self.engine.statistics)

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
    engine: str,
    transport: str = "tcp",
    limits: ServerLimits | None = None,
    *,
    app: object | None = None,
    **options: Any,
) -> Iterator[Running]:
    """An engine serving ``app`` (default: the reference tools) on 127.0.0.1 from a thread."""
    with serve_in_thread(
        app, engine=engine, transport=transport, limits=limits, **options
    ) as server:
        yield Running(server.port, server.engine, server.loop, server.clock)


class LineClient:
    """A blocking newline-JSON client with a socket timeout (tests never hang)."""

    def __init__(self, port: int, *, timeout: float = 5.0, receive_buffer: int = 0) -> None:
        self.sock = socket.socket()
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = b""

    def send(self, *messages: dict[str, Any] | list[Any] | bytes) -> None:
        self.sock.sendall(b"".join(m if isinstance(m, bytes) else line(m) for m in messages))

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the server closed the connection."""
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

    def ping(self, request_id: int = 1) -> bool:
        reply = self.call(ping(request_id))
        return reply is not None and reply.get("id") == request_id and reply["result"] == {}

    def closed_by_server(self) -> bool:
        """True once the server has closed (EOF or reset) within the socket timeout."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

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
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in base.items() if v is not None
    )
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


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def split_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Every complete HTTP response in ``data`` (Content-Length or chunked bodies)."""
    found = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            break
        status, headers, _ = parse_response(head + b"\r\n\r\n")
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    rest = rest[2:]
                    break
                body += rest[:size]
                rest = rest[size + 2 :]
        else:
            length = int(headers.get("content-length", "0"))
            body, rest = rest[:length], rest[length:]
        found.append((status, headers, body))
        data = rest
    return found


def sse_messages(body: bytes) -> list[dict[str, Any]]:
    """The JSON messages of an event-stream body."""
    return [
        json.loads(item[len(b"data: ") :])
        for item in body.split(b"\n")
        if item.startswith(b"data: ")
    ]


class HttpPipe(CorePipe):
    """``CorePipe`` speaking HTTP: requests in, parsed responses out."""

    def __init__(self, surface: Surface | None = None, **options: Any) -> None:
        super().__init__(surface, transport="http", **options)

    def exchange(self, connection: int, data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
        return split_responses(self.feed(connection, data))

    def once(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection, which the client then closes; its one response."""
        connection = self.connect()
        [response] = self.exchange(connection, data)
        self.core.closed(connection)
        return response

    def initialized(self) -> str:
        """A new session's token (initialize and notifications/initialized done)."""
        status, headers, _ = self.once(http_request(body=INIT))
        assert status == 200
        token = headers["mcp-session-id"]
        status, _, _ = self.once(http_request(body=INITIALIZED, headers={"mcp-session-id": token}))
        assert status == 202
        return token


class GateSurface:
    """The reference tools plus ``gate``: an async tool that waits until the test opens it."""

    def __init__(self) -> None:
        self.app: App = build_reference_app(name="gate")
        self._gate: asyncio.Event | None = None
        self.waiting = 0

        @self.app.tool()
        async def gate() -> str:
            """Wait until the test opens the gate."""
            if self._gate is None:
                self._gate = asyncio.Event()
            self.waiting += 1
            try:
                await self._gate.wait()
            finally:
                self.waiting -= 1
            return "opened"

    def __connscale_surface__(self) -> App:
        return self.app

    def open(self) -> None:
        """Let every waiting ``gate`` call finish (call on the server's loop)."""
        if self._gate is None:
            self._gate = asyncio.Event()
        self._gate.set()


@contextlib.contextmanager
def served(
    tmp_path: Any, *arguments: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """``connscale serve ARGS`` in a subprocess, ready; stopped on exit if still running."""
    from connscale import testing

    with testing.served(tmp_path, arguments, env=env, timeout=timeout) as running_server:
        yield running_server


# -- a load-generator protocol driven by bytes ---------------------------------------------------


class FakeLink:
    """A load generator's ``Link`` recording what a protocol reports; ``written``: what it sent."""

    def __init__(self) -> None:
        self.written = b""
        self.events: list[str] = []

    def write(self, conn: Conn, data: bytes) -> None:
        self.written += data

    def ready(self, conn: Conn) -> None:
        conn.state = READY
        self.events.append("ready")

    def answered(self, conn: Conn, *, error: bool) -> None:
        conn.pending_id = -1
        self.events.append(f"answered error={error}")

    def refused(self, conn: Conn, reason: str, detail: str) -> None:
        conn.state = CLOSED
        self.events.append(f"refused {reason}: {detail}")

    def lost(self, conn: Conn, reason: str) -> None:
        conn.state = CLOSED
        self.events.append(f"lost {reason}")

    def server_event(self, conn: Conn) -> None:
        self.events.append("event")
