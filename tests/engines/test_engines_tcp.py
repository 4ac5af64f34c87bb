"""Both engines, same integration tests: MCP over newline-delimited JSON on loopback TCP."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any

import pytest
from engine_harness import RunningServer, start_server

from connscale.core.protocol.limits import ServerLimits

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rwb")

    def send(self, message: dict[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.file.write(data)
        self.file.flush()

    def receive(self) -> Any:
        line = self.file.readline()
        return json.loads(line) if line else None

    def call(self, message: dict[str, Any]) -> Any:
        self.send(message)
        return self.receive()

    def initialize(self) -> None:
        assert self.call(INIT)["result"]["protocolVersion"] == "2025-06-18"
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def tool(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def test_lifecycle_tools_and_experts(tcp_server: RunningServer) -> None:
    client = Client(tcp_server.port)
    assert (
        client.call({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})["error"]["code"] == -32600
    )
    client.initialize()
    assert client.call({"jsonrpc": "2.0", "id": 2, "method": "ping"})["result"] == {}
    names = [
        t["name"]
        for t in client.call({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})["result"]["tools"]
    ]
    assert names == ["echo", "consult_experts", "get_expert_responses"]
    assert client.call(tool(4, "echo", {"text": "hi"}))["result"]["content"][0]["text"] == "hi"
    consulted = client.call(tool(5, "consult_experts", {"question": "Is the sea salty?"}))["result"]
    assert not consulted["isError"]
    structured = consulted["structuredContent"]
    assert structured["responses"] and 0.0 <= structured["confidence"] <= 1.0
    collected = client.call(tool(6, "get_expert_responses", {"query_id": structured["query_id"]}))[
        "result"
    ]
    assert len(collected["structuredContent"]["responses"]) == len(structured["responses"])
    assert client.call(tool(7, "get_expert_responses", {"query_id": "nope"}))["result"]["isError"]
    client.close()


def test_sessions_are_freed_on_disconnect(tcp_server: RunningServer) -> None:
    clients = [Client(tcp_server.port) for _ in range(5)]
    for client in clients:
        client.initialize()
        assert client.call({"jsonrpc": "2.0", "id": 9, "method": "ping"})["result"] == {}
    stats = tcp_server.call(tcp_server.engine.statistics)
    assert stats.connections == 5 and stats.sessions == 5
    for client in clients:
        client.close()
    # A ping on a fresh connection is answered after the closes were processed (same loop, FIFO).
    probe = Client(tcp_server.port)
    for _ in range(50):
        probe.call({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        if tcp_server.call(tcp_server.engine.statistics).sessions == 1:
            break
    assert tcp_server.call(tcp_server.engine.statistics).sessions == 1
    probe.close()


def test_pipelined_requests_split_at_every_byte(tcp_server: RunningServer) -> None:
    client = Client(tcp_server.port)
    client.initialize()
    stream = b"".join(
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}).encode() + b"\n" for i in range(3)
    )
    for cut in range(1, len(stream), 7):
        client.sock.sendall(stream[:cut])
        client.sock.sendall(stream[cut:])
        assert [client.receive()["id"] for _ in range(3)] == [0, 1, 2]
    client.close()


def test_errors_do_not_close_the_connection(tcp_server: RunningServer) -> None:
    client = Client(tcp_server.port)
    client.send(b"\xff\xfe garbage\n")
    assert client.receive()["error"]["code"] == -32700
    client.send(b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]\n')
    assert client.receive()["error"]["code"] == -32600
    assert client.call({"jsonrpc": "2.0", "id": 2, "method": "nope"})["error"]["code"] == -32601
    assert client.call({"jsonrpc": "2.0", "id": 3, "method": "ping"})["result"] == {}
    client.close()


@pytest.mark.parametrize("engine", ["epoll", "asyncio"])
def test_frame_too_large_answers_then_closes(engine: str) -> None:
    for server in start_server(engine, "tcp", ServerLimits(max_frame_bytes=100)):
        client = Client(server.port)
        client.send(b"x" * 500)  # no newline: never buffered whole
        reply = client.receive()
        assert reply["error"]["code"] == -32600 and "too large" in reply["error"]["message"]
        assert client.receive() is None  # closed
        client.close()


@pytest.mark.parametrize("engine", ["epoll", "asyncio"])
def test_connection_limit_refuses_cleanly(engine: str) -> None:
    for server in start_server(engine, "tcp", ServerLimits(max_connections=2)):
        kept = [Client(server.port) for _ in range(2)]
        for client in kept:
            client.initialize()
        extra = Client(server.port)
        with contextlib.suppress(ConnectionResetError):
            assert extra.receive() is None  # closed at once
        assert kept[0].call({"jsonrpc": "2.0", "id": 1, "method": "ping"})["result"] == {}
        for client in [*kept, extra]:
            client.close()


@pytest.mark.parametrize("engine", ["epoll", "asyncio"])
def test_handshake_timeout_closes_silent_connections(engine: str) -> None:
    for server in start_server(engine, "tcp", ServerLimits(handshake_timeout=0.2)):
        silent = Client(server.port)
        ready = Client(server.port)
        ready.initialize()
        assert silent.receive() is None  # blocks until the server closes it (socket timeout 5 s)
        assert ready.call({"jsonrpc": "2.0", "id": 1, "method": "ping"})["result"] == {}
        silent.close()
        ready.close()
