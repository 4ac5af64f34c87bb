"""Baseline servers: their MCP logic, and each one serving real connections."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.bench.baselines import (
    TCP_BASELINES,
    McpApp,
    missing,
    sdk_available,
    write_ready_file,
)
from connscale.bench.orchestrator import default_servers, running_server
from connscale.loadgen.swarm import Swarm


def _call(app: McpApp, session: str, message: object) -> dict[str, object] | None:
    reply = app.handle_line(session, json.dumps(message).encode())
    return None if reply is None else json.loads(reply)


def test_mcp_lifecycle_and_tools_keep_dict_sessions() -> None:
    app = McpApp()
    session = app.open_session()
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}},
    }
    reply = _call(app, session, init)
    assert reply is not None and reply["id"] == 1 and "serverInfo" in reply["result"]  # type: ignore[operator]
    assert _call(app, session, {"jsonrpc": "2.0", "method": "notifications/initialized"}) is None
    assert app.sessions[session]["initialized"] is True
    assert _call(app, session, {"jsonrpc": "2.0", "id": 2, "method": "ping"}) == {
        "jsonrpc": "2.0",
        "id": 2,
        "result": {},
    }
    echo = {"name": "echo", "arguments": {"text": "hi"}}
    reply = _call(app, session, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": echo})
    assert reply is not None and reply["result"]["content"][0]["text"] == "hi"  # type: ignore[index]
    reply = _call(app, session, {"jsonrpc": "2.0", "id": 4, "method": "nope"})
    assert reply is not None and reply["error"]["code"] == -32601  # type: ignore[index]
    app.close_session(session)
    assert not app.sessions


@given(st.binary(max_size=200))
def test_garbage_lines_get_an_error_or_nothing(data: bytes) -> None:
    app = McpApp()
    session = app.open_session()
    reply = app.handle_line(session, data)
    if reply is not None:
        assert isinstance(json.loads(reply), dict)


def test_ready_file_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    write_ready_file(path, {"port": 1})
    assert json.loads(path.read_text()) == {"port": 1}
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("name", TCP_BASELINES)
def test_each_baseline_serves_handshakes_and_pings(name: str, tmp_path: Path) -> None:
    spec = default_servers(names=[name])[0]
    with running_server(spec, tmp_path) as server:
        ready = json.loads((tmp_path / f"{name}.ready.json").read_text())
        assert ready["engine"] == name and ready["pids"] == [server.process.pid]
        swarm = Swarm(server.host, server.port)
        try:
            swarm.grow(20)
            swarm.run_until(lambda: not swarm.growing, time.monotonic() + 20)
            assert swarm.status().established == 20
            swarm.start_traffic(duration=0.2, concurrency=4, mix=(("ping", 1), ("experts", 1)))
            swarm.run_until(lambda: swarm.traffic_result() is not None, time.monotonic() + 10)
            result = swarm.traffic_result()
            assert result is not None and result.requests > 0 and result.errors == 0
        finally:
            swarm.close_all()
    assert server.process.poll() is not None  # stopped with its group


@pytest.mark.sdk
def test_sdk_baseline_over_streamable_http(tmp_path: Path) -> None:
    if not sdk_available():
        pytest.skip("the official MCP SDK is not installed")
    spec = default_servers(transport="http", names=["mcp-sdk"])[0]
    with running_server(spec, tmp_path) as server:
        swarm = Swarm(server.host, server.port, protocol="mcp-http")
        try:
            swarm.grow(5)
            swarm.run_until(lambda: not swarm.growing, time.monotonic() + 30)
            status = swarm.status()
            assert status.established == 5, status.first_error
            swarm.start_traffic(duration=0.3, concurrency=2, mix=(("ping", 1), ("echo", 1)))
            swarm.run_until(lambda: swarm.traffic_result() is not None, time.monotonic() + 10)
            result = swarm.traffic_result()
            assert result is not None and result.requests > 0 and result.errors == 0
        finally:
            swarm.close_all()


@pytest.mark.sdk
def test_sdk_baseline_serves_listen_streams_and_stateless_calls(tmp_path: Path) -> None:
    if not sdk_available() or missing("mcp-sdk", "mcp-listen") is not None:
        pytest.skip("the official MCP SDK 2.x is not installed")
    spec = default_servers(names=["mcp-sdk:mcp-listen"])[0]
    with running_server(spec, tmp_path) as server:
        listens = Swarm(server.host, server.port, protocol="mcp-listen")
        calls = Swarm(server.host, server.port, protocol="mcp-stateless")
        try:
            for swarm in (listens, calls):
                swarm.grow(5)
                swarm.run_until(lambda s=swarm: not s.growing, time.monotonic() + 30)
                assert swarm.status().established == 5, swarm.status().first_error
            calls.start_traffic(duration=0.3, concurrency=2, mix=(("echo", 1), ("list", 1)))
            calls.run_until(lambda: calls.traffic_result() is not None, time.monotonic() + 10)
            result = calls.traffic_result()
            assert result is not None and result.requests > 0 and result.errors == 0
            assert listens.status().dropped == 0
        finally:
            listens.close_all()
            calls.close_all()
