"""Servers as a user writes them, for a `connscale bench` run with --target.

    python -m benchmarks.example_servers ws PORT    # websockets: a chat room, state per user
    python -m benchmarks.example_servers tcp PORT   # asyncio Protocol: a line echo
    python -m benchmarks.example_servers mcp PORT   # MCP over TCP (asyncio streams, dicts)

They know nothing of connscale's ready-file contract: the bench waits for their port.
"""

from __future__ import annotations

import asyncio
import signal
import sys


async def chat(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    members: dict[ServerConnection, dict[str, object]] = {}

    async def member(connection: ServerConnection) -> None:
        members[connection] = {"name": f"guest-{id(connection):x}", "rooms": {"lobby"}}
        try:
            async for message in connection:
                if message == "ping":
                    await connection.send("pong")
                else:
                    broadcast(members, message)
        finally:
            members.pop(connection, None)

    async with serve(member, "127.0.0.1", port):
        await _until_stopped()


class LineEcho(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.transport.write(line + b"\n")  # type: ignore[attr-defined]


async def line_echo(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(LineEcho, "127.0.0.1", port)
    async with server:
        await _until_stopped()


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("ws", "tcp", "mcp") or not argv[1].isdigit():
        print("usage: python -m benchmarks.example_servers ws|tcp|mcp PORT", file=sys.stderr)
        return 2
    kind, port = argv[0], int(argv[1])
    if kind == "mcp":
        from connscale.bench.baselines import main as baseline

        return baseline(["asyncio-streams", "--port", str(port)])
    asyncio.run(chat(port) if kind == "ws" else line_echo(port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
