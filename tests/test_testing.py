"""connscale.testing: the fake clock and running an engine in a thread."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import McpProtocol
from connscale.core.session import SessionTable
from connscale.engines.epoll import EpollEngine
from connscale.errors import ServerError
from connscale.server.app import build_registry
from connscale.testing import FakeClock, engine_in_thread, served


def test_fake_clock_moves_only_forward() -> None:
    clock = FakeClock(10.0)
    clock.advance(2.5)
    assert clock() == 12.5 == clock.now
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_engine_in_thread_serves_then_stops() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    registry = build_registry()
    protocol = McpProtocol(SessionTable(), tools=registry.descriptors(), limits=ServerLimits())
    engine = EpollEngine(listener, protocol, registry.invoke)
    try:
        with engine_in_thread(engine) as loop:
            assert loop.is_running()
            with socket.create_connection(listener.getsockname(), timeout=5) as client:
                client.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
                assert b'"id":1' in client.recv(4096)
        assert not loop.is_running()
    finally:
        listener.close()


def test_served_reports_a_server_that_exits_before_it_is_ready(tmp_path: Path) -> None:
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(ServerError, match="exited with code 3"), served(tmp_path, command=failing):
        pass


def test_served_yields_the_ready_payload_and_stops_the_server(tmp_path: Path) -> None:
    with served(tmp_path, ["--port", "0"]) as (process, ready):
        assert ready["pids"] and ready["port"] > 0
        with socket.create_connection(("127.0.0.1", ready["port"]), timeout=5) as client:
            client.sendall(b'{"jsonrpc":"2.0","id":7,"method":"ping"}\n')
            assert b'"id":7' in client.recv(4096)
    assert process.returncode == 0
