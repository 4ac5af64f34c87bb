"""``connscale serve``: the ready-file and stats contracts, signals, user errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serve_harness import serve


@pytest.mark.parametrize(("engine", "transport"), [("epoll", "tcp"), ("asyncio", "http")])
def test_ready_file_contract_and_clean_stop(tmp_path: Path, engine: str, transport: str) -> None:
    stats_dir = tmp_path / "stats"
    arguments = ("--engine", engine, "--transport", transport, "--stats-dir", str(stats_dir))
    with serve(tmp_path, *arguments) as (process, ready):
        assert ready == {
            "transport": transport,
            "engine": engine,
            "host": "127.0.0.1",
            "port": ready["port"],
            "supervisor_pid": process.pid,
            "pids": [process.pid],
        }
        assert ready["port"] > 0
        with socket.create_connection(("127.0.0.1", ready["port"]), timeout=5):
            os.kill(process.pid, signal.SIGUSR1)
            path = stats_dir / f"worker-{process.pid}.json"
            deadline = time.monotonic() + 10
            while not path.exists():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            stats = json.loads(path.read_text())
            assert stats["pid"] == process.pid and stats["connections"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_bad_arguments_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connscale", "serve", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "workers" in result.stderr and "Traceback" not in result.stderr


def test_port_in_use_is_a_clean_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "connscale", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert "cannot bind" in result.stderr
