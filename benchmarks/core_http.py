"""CPU of the connection core alone per MCP request over HTTP: no sockets, no event loop.

The real ``ConnectionCore`` with ``McpHttp`` (llhttp, the session id sealed with AES-GCM, the
reference app's sync ``echo`` answered inline by the engines' ``CallRunner``) is fed one
complete keep-alive request at a time through a wire that keeps nothing. What it measures is
the Python (and C extension) work per request that no engine can avoid; an engine adds its
read and write system calls on top. Two requests: a handshake-era ``tools/call`` carrying its
session id, and a stateless 2026-07-28 ``tools/call`` with its envelope and headers.
``time.process_time`` per request, median of ``--repeat`` rounds of ``--requests``.

    .venv/bin/python -m benchmarks.core_http
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from benchmarks._serving import HTTP_INITIALIZE
from connscale._hot_path import compiled_modules
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
    """Takes what the core writes and keeps only the last response (to find the session id)."""

    def __init__(self) -> None:
        self.last = b""

    def write(self, connection: int, data: bytes) -> int:
        self.last = data
        return 0

    def set_reading(self, connection: int, reading: bool) -> None:
        pass

    def disconnect(self, connection: int, flush: bool) -> None:
        raise SystemExit("the core closed the benchmark's connection: a request was refused")

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (the median is kept)")
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
    head = wire.last.split(b"\r\n\r\n", 1)[0].decode()
    session = next(
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("mcp-session-id:")
    )
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

    compiled = compiled_modules()
    print(f"hot path: {f'compiled, {len(compiled)} modules' if compiled else 'interpreted'}")
    print("| request | core CPU µs/request (median) | rounds |")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
