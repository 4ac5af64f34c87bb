"""connscale.testing: the fake clock and running an engine in a thread."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import pytest

from connscale.core.protocol.limits import ServerLimits
from connscale.engines._base import Engine
from connscale.errors import ServerError
from connscale.server.build import build_engine
from connscale.server.config import ServerConfig
from connscale.server.supervisor import resolve_app
from connscale.testing import FakeClock, engine_in_thread, serve_in_thread, served


def test_fake_clock_moves_only_forward() -> None:
    clock = FakeClock(10.0)
    clock.advance(2.5)
    assert clock() == 12.5 == clock.now
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def _engine(listener: socket.socket) -> Engine:
    return build_engine(ServerConfig(), resolve_app(ServerConfig()), listener)


def test_engine_in_thread_serves_then_stops() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        with engine_in_thread(_engine(listener)) as loop:
            assert loop.is_running()
            with socket.create_connection(listener.getsockname(), timeout=5) as client:
                client.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
                assert b'"id":1' in client.recv(4096)
        assert not loop.is_running()
    finally:
        listener.close()


def test_a_stop_right_after_the_start_is_not_lost() -> None:
    """Regression: "started" was set before the loop ran, so an immediate stop was lost and
    the engine thread outlived the test (6 of 20 cycles)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        for _ in range(20):
            with engine_in_thread(_engine(listener)):
                pass
        assert not [t for t in threading.enumerate() if t.name == "connscale-engine"]
    finally:
        listener.close()


def test_serve_in_thread_runs_timeouts_on_its_fake_clock() -> None:
    limits = ServerLimits(handshake_timeout=30.0)
    with serve_in_thread(limits=limits) as server:
        assert isinstance(server.clock, FakeClock)
        client = socket.create_connection(server.address, timeout=0.5)
        server.call(lambda: None)  # let the loop accept it
        server.advance(10.0)
        client.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
        assert b'"id":1' in client.recv(4096)  # 10 s of 30: still open
        server.advance(40.0)
        assert client.recv(4096) == b""  # closed at the handshake timeout, no sleeping
        client.close()


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
