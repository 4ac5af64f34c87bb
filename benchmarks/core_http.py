"""CPU of the connection core alone per MCP request over HTTP: no sockets, no event loop.

The real ``ConnectionCore`` with ``McpHttp`` (llhttp, the session id sealed with AES-GCM, the
reference app's sync ``echo`` answered inline by the engines' ``CallRunner``) is fed one
complete keep-alive request at a time through a wire that keeps nothing. What it measures is
the Python (and C extension) work per request that no engine can avoid; an engine adds its
read and write system calls on top. Two requests: a handshake-era ``tools/call`` carrying its
session id, and a stateless 2026-07-28 ``tools/call`` with its envelope and headers.
``time.process_time`` per request, median of ``--repeat`` rounds of ``--requests``.

A third row is one handshake-era session setup, as ``benchmarks.server_memory`` makes them:
``initialize`` POSTed on a connection that closes after its answer, then a GET event stream
on a new one, held. It is timed twice: back to back (everything stays in the CPU caches),
and with 16 MiB touched before each setup (``cache-cold``), which is closer to a server
where the kernel and other connections run between one client's requests.

    .venv/bin/python -m benchmarks.core_http
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from benchmarks._serving import HTTP_INITIALIZE, session_id_in
from connscale._hot_path import mode
from connscale.core.connection import ConnectionCore
from connscale.core.protocol.http import McpHttp
from connscale.core.protocol.mcp import McpProtocol
from connscale.core.protocol.tokens import SessionSealer
from connscale.core.session import SessionTable, Transport
from connscale.engines._runner import CallRunner
from connscale.server.reference import build_reference_app

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class DiscardingWire:
    """Takes what the core writes and keeps only the last response (to find the session id).

    A connection closes only when ``closing`` allows it (the setup's short connection)."""

    def __init__(self) -> None:
        self.last = b""
        self.core: ConnectionCore | None = None
        self.closing = False

    def write(self, connection: int, data: bytes) -> int:
        self.last = data
        return 0

    def set_reading(self, connection: int, reading: bool) -> None:
        pass

    def disconnect(self, connection: int, flush: bool) -> None:
        if not self.closing or self.core is None:
            raise SystemExit("the core closed the benchmark's connection: a request was refused")
        self.core.closed(connection)

    def call_soon(self) -> None:
        pass

    def wake_at(self, when: float) -> None:
        pass


def request(message: dict[str, object], headers: dict[str, str]) -> bytes:
    body = json.dumps(message).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        "accept: application/json, text/event-stream\r\n"
        f"{head}content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def setup_cost(count: int, *, cold: bool) -> float:
    """µs of CPU per session setup through a fresh core (see the module docstring)."""
    app = build_reference_app()
    table = SessionTable(capacity=2 * count + 16, index_by_id=True)
    protocol = McpProtocol(app, table, transport=Transport.HTTP)
    http = McpHttp(protocol, sealer=SessionSealer(b"k" * 32))
    size = 2 * count + 16
    core = ConnectionCore(
        protocol, CallRunner(app), size, clock=time.monotonic, http=http, max_connections=size
    )
    wire = DiscardingWire()
    wire.core, wire.closing = core, True
    core.attach(wire)
    post = request(HTTP_INITIALIZE, {"connection": "close"})
    evict = bytearray(16 << 20)
    ones = b"\x01" * (len(evict) // 64)
    spent = 0.0
    for number in range(count):
        if cold:
            evict[::64] = ones  # one write per cache line: the caches now hold this instead
        started = time.process_time()
        core.open(2 * number)
        core.receive(2 * number, post)
        token = session_id_in(wire.last)
        core.open(2 * number + 1)
        core.receive(
            2 * number + 1,
            b"GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n"
            b"mcp-session-id: " + token + b"\r\n\r\n",
        )
        spent += time.process_time() - started
        if not wire.last.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"the GET stream was refused: {wire.last[:200]!r}")
    return spent / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (the median is kept)")
    parser.add_argument("--setups", type=int, default=3_000, help="session setups per round")
    args = parser.parse_args(argv)
    app = build_reference_app()
    protocol = McpProtocol(app, SessionTable(index_by_id=True), transport=Transport.HTTP)
    http = McpHttp(protocol, sealer=SessionSealer(b"k" * 32))
    core = ConnectionCore(
        protocol, CallRunner(app), 8, clock=time.monotonic, http=http, max_connections=8
    )
    wire = DiscardingWire()
    core.attach(wire)
    connection = 0
    assert core.open(connection)

    core.receive(connection, request(HTTP_INITIALIZE, {}))
    session = session_id_in(wire.last).decode()
    echo = {"name": "echo", "arguments": {"text": "hello"}}
    handshake = request(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": echo},
        {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"},
    )
    stateless = request(
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {**echo, "_meta": META}},
        {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "echo"},
    )

    def per_request(data: bytes, count: int) -> float:
        receive = core.receive
        started = time.process_time()
        for _ in range(count):
            receive(connection, data)
        return (time.process_time() - started) / count * 1e6

    print(f"hot path: {mode()}")
    print("| request | core CPU µs (median) | rounds |")
    print("|---|---:|---|")
    for name, data in (
        ("handshake-era tools/call", handshake),
        ("stateless tools/call", stateless),
    ):
        per_request(data, 2_000)  # warm-up
        if b'"result"' not in wire.last:
            raise SystemExit(f"{name}: the core did not answer with a result: {wire.last[:200]!r}")
        rounds = [per_request(data, args.requests) for _ in range(args.repeat)]
        shown = ", ".join(f"{r:.1f}" for r in rounds)
        print(f"| {name} | {statistics.median(rounds):.1f} | {shown} |")
    for name, cold in (("session setup (POST + GET)", False), ("same, cache-cold", True)):
        setup_cost(200, cold=cold)  # warm-up
        rounds = [setup_cost(args.setups, cold=cold) for _ in range(args.repeat)]
        shown = ", ".join(f"{r:.1f}" for r in rounds)
        print(f"| {name} | {statistics.median(rounds):.1f} | {shown} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
