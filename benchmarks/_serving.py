"""Shared by the benchmarks: a served subprocess, a small MCP client, a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connscale import testing

PROTOCOL_VERSION = "2025-06-18"
INIT = (
    json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "connscale-bench", "version": "1"},
            },
        }
    ).encode()
    + b"\n"
)
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
# The handshake-era initialize the HTTP benchmarks POST (2025-11-25).
HTTP_INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


def free_port() -> int:
    """A loopback TCP port nothing listens on now (the caller binds it soon after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def session_id_in(response: bytes) -> bytes:
    """The ``Mcp-Session-Id`` an HTTP response (or its head) carries."""
    head = response.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"mcp-session-id:"):
            return line.split(b":", 1)[1].strip()
    raise ConnectionError("the response carries no Mcp-Session-Id")


def ping(request_id: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % request_id


def echo(request_id: int, text: str) -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}},
    }
    return json.dumps(message).encode() + b"\n"


@dataclass
class Served:
    """A running ``connscale serve``: its process, port and the pids holding connections."""

    process: subprocess.Popen[bytes]
    port: int
    pids: list[int]
    ready_file: Path

    def current_pids(self) -> list[int]:
        """The pids now holding connections (the supervisor rewrites them on a restart)."""
        return [int(pid) for pid in json.loads(self.ready_file.read_text())["pids"]]


@contextlib.contextmanager
def served(
    arguments: Sequence[str] = (), *, config: dict[str, Any] | None = None, timeout: float = 30.0
) -> Iterator[Served]:
    """Start ``connscale serve ARGS`` and stop it (SIGTERM, then SIGKILL) when done.

    With ``config`` (``ServerConfig`` fields, ``limits`` as a dict of ``ServerLimits``
    fields) the server is started from Python instead, for settings the CLI does not take.
    """
    command = None
    if config is not None:
        command = [sys.executable, "-m", "benchmarks._serving", json.dumps(config)]
    with (
        tempfile.TemporaryDirectory(prefix="connscale-bench-") as scratch,
        testing.served(
            Path(scratch), arguments, command=command, timeout=timeout, stop_timeout=15
        ) as (process, ready),
    ):
        pids = [int(pid) for pid in ready["pids"]]
        yield Served(process, int(ready["port"]), pids, Path(scratch) / "ready.json")


class McpClient:
    """One newline-JSON MCP session over asyncio streams (the benchmark's side, not measured)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._next_id = 1

    @classmethod
    async def connect(cls, port: int, *, initialize: bool = True) -> McpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        client = cls(reader, writer)
        if initialize:
            await client.initialize()
        return client

    async def initialize(self) -> None:
        self.writer.write(INIT)
        reply = await self.receive()
        if "result" not in reply:
            raise RuntimeError(f"initialize failed: {reply}")
        self.writer.write(INITIALIZED)

    async def receive(self) -> dict[str, Any]:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        return json.loads(line)  # type: ignore[no-any-return]

    async def request(self, build: Any, *args: Any) -> dict[str, Any]:
        request_id = self._next_id
        self._next_id += 1
        self.writer.write(build(request_id, *args))
        reply = await self.receive()
        if reply.get("id") != request_id:
            raise RuntimeError(f"reply to {reply.get('id')} while waiting for {request_id}")
        return reply

    async def timed_ping(self) -> float:
        """Seconds one ping took, request written to reply read."""
        started = time.perf_counter()
        reply = await self.request(ping)
        if reply.get("result") != {}:
            raise RuntimeError(f"ping failed: {reply}")
        return time.perf_counter() - started

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank]


def _serve_from_json(argv: list[str]) -> int:
    """``python -m benchmarks._serving CONFIG_JSON --ready-file PATH``: serve that config."""
    from connscale.core.protocol.limits import ServerLimits
    from connscale.server.config import ServerConfig
    from connscale.server.supervisor import serve

    fields = json.loads(argv[0])
    limits = ServerLimits(**fields.pop("limits", {}))
    return serve(ServerConfig(**fields, limits=limits, ready_file=Path(argv[2])))


if __name__ == "__main__":
    sys.exit(_serve_from_json(sys.argv[1:]))
