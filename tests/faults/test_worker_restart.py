"""kill -9 one of two workers: the supervisor restarts it; the other's sessions go on."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from support import LineClient, served, wait_until


@pytest.mark.parametrize("engine", ["epoll", "asyncio"])
def test_killed_worker_is_restarted_and_other_sessions_are_unaffected(
    tmp_path: Path, engine: str
) -> None:
    stats_dir = tmp_path / "stats"
    with served(tmp_path, "--workers", "2", "--engine", engine, "--stats-dir", str(stats_dir)) as (
        process,
        ready,
    ):
        sessions = [LineClient(ready["port"], timeout=5) for _ in range(16)]
        for client in sessions:
            client.initialize()
        os.kill(process.pid, signal.SIGUSR1)  # each worker writes how many it holds
        wait_until(lambda: len(list(stats_dir.glob("worker-*.json"))) == 2)
        held = {
            stats["pid"]: stats["sessions"]
            for stats in (json.loads(p.read_text()) for p in stats_dir.glob("worker-*.json"))
        }
        assert sum(held.values()) == 16
        victim, survivor = ready["pids"]
        os.kill(victim, signal.SIGKILL)
        alive = [client for i, client in enumerate(sessions) if client.ping(100 + i)]
        assert len(alive) == held[survivor]  # every session on the other worker still answers
        ready_file = tmp_path / "ready.json"
        wait_until(lambda: victim not in json.loads(ready_file.read_text())["pids"])
        pids = json.loads(ready_file.read_text())["pids"]
        assert survivor in pids and len(pids) == 2
        fresh = [LineClient(ready["port"]) for _ in range(8)]  # both workers take new ones
        for client in fresh:
            client.initialize()
            assert client.ping(1)
        assert all(client.ping(200) for client in alive)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        for client in sessions + fresh:
            client.close()
