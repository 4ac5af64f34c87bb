"""Workers: SO_REUSEPORT, restart after kill -9, SIGUSR1 statistics, HTTP sessions on any worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from serve_harness import serve

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


def tcp_ping(port: int) -> dict[str, object]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        sock.makefile("rwb") as file,
    ):
        file.write(
            json.dumps(INIT).encode() + b"\n" + b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n'
        )
        file.flush()
        file.readline()
        return json.loads(file.readline())  # type: ignore[no-any-return]


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize("engine", ["epoll", "asyncio"])
def test_two_workers_restart_and_statistics(tmp_path: Path, engine: str) -> None:
    stats_dir = tmp_path / "stats"
    with serve(tmp_path, "--workers", "2", "--engine", engine, "--stats-dir", str(stats_dir)) as (
        process,
        ready,
    ):
        assert ready["supervisor_pid"] == process.pid
        assert len(ready["pids"]) == 2 and process.pid not in ready["pids"]
        for _ in range(4):
            assert tcp_ping(ready["port"])["result"] == {}
        os.kill(process.pid, signal.SIGUSR1)  # forwarded to every worker
        wait_for(lambda: len(list(stats_dir.glob("worker-*.json"))) == 2)
        for path in stats_dir.glob("worker-*.json"):
            stats = json.loads(path.read_text())
            assert set(stats) == {"pid", "connections", "sessions", "gc", "gc_frozen_objects"}
            # start-up objects were frozen out of the collector's view
            assert stats["gc_frozen_objects"] > 10_000
            assert stats["pid"] in ready["pids"]
        victim = ready["pids"][0]
        os.kill(victim, signal.SIGKILL)
        ready_file = tmp_path / "ready.json"
        wait_for(lambda: victim not in json.loads(ready_file.read_text())["pids"])
        pids = json.loads(ready_file.read_text())["pids"]
        assert len(pids) == 2 and ready["pids"][1] in pids
        for _ in range(4):
            assert tcp_ping(ready["port"])["result"] == {}
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_http_session_works_on_any_worker(tmp_path: Path) -> None:
    with serve(tmp_path, "--workers", "2", "--transport", "http") as (process, ready):
        url = f"http://127.0.0.1:{ready['port']}/mcp"
        headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        session = httpx.post(url, json=INIT, headers=headers, timeout=5).headers["mcp-session-id"]
        headers["mcp-session-id"] = session
        for request_id in range(12):  # a new connection each time: the kernel spreads them
            reply = httpx.post(
                url,
                json={"jsonrpc": "2.0", "id": request_id, "method": "ping"},
                headers=headers,
                timeout=5,
            )
            assert reply.json()["result"] == {}
        assert httpx.delete(url, headers=headers, timeout=5).status_code == 200
        for request_id in range(6):  # the DELETE is seen by both workers (shared revocations)
            reply = httpx.post(
                url,
                json={"jsonrpc": "2.0", "id": request_id, "method": "ping"},
                headers=headers,
                timeout=5,
            )
            assert reply.status_code == 404
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0


def test_socket_send_buffer_is_set_on_the_listener_and_validated() -> None:
    from connscale.errors import ConfigurationError
    from connscale.server.config import ServerConfig
    from connscale.server.supervisor import bind_listener

    capped = bind_listener(ServerConfig(socket_send_buffer=64 << 10), 0, reuse_port=False)
    default = bind_listener(ServerConfig(), 0, reuse_port=False)
    try:
        # Linux doubles the value asked for (bookkeeping overhead); autotuning starts lower.
        assert capped.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 64 << 10
        assert capped.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) != default.getsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF
        )
    finally:
        capped.close()
        default.close()
    for bad in ({"socket_send_buffer": -1}, {"http_keepalive_timeout": 0}):
        with pytest.raises(ConfigurationError):
            ServerConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["tcp", "http"])
def test_session_table_is_sized_once_for_the_worker_worst_case(transport: str) -> None:
    import resource

    from connscale.core.protocol.limits import ServerLimits
    from connscale.errors import ConfigurationError, TableFullError
    from connscale.server.build import session_table as _session_table
    from connscale.server.config import ServerConfig

    http = transport == "http"
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft != resource.RLIM_INFINITY  # the derivation below assumes a finite limit
    cases = {
        5000: min(5000, soft - 64),  # an explicit limit, capped by open files
        10: 1024,  # small limits still get a usable table
        0: max(1024, soft - 64),  # 0: derived from the open-files limit, as the engines do
    }
    for max_connections, expected in cases.items():
        limits = ServerLimits(max_connections=max_connections)
        table = _session_table(ServerConfig(transport=transport, limits=limits))  # type: ignore[arg-type]
        if http:
            # Slots belong to requests and streams, not connections: growth stays allowed,
            # and a session's slot is found by its id.
            assert (table.capacity, table.max_capacity) == (expected, None)
            slot = table.allocate(transport=transport)
            assert table.find(table.get(slot, "session_id")) == slot
            continue
        # TCP: a session's slot is its connection's fd, so the table covers every fd the
        # worker may open (whatever the connection limit) and never grows; no id index.
        assert table.capacity == table.max_capacity == max(1024, soft)
        with pytest.raises(ConfigurationError, match="addressed"):
            table.allocate(transport=transport)
        slot = table.allocate(transport=transport, slot=soft - 1)
        assert slot == soft - 1
        with pytest.raises(TableFullError):
            table.allocate(transport=transport, slot=soft)
        with pytest.raises(ConfigurationError):
            table.find(table.get(slot, "session_id"))
