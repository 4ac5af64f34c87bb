"""Distributed load through Locust: a master and two workers, headless and bounded in time,
run examples/locustfile.py against ``connscale serve`` on loopback; the master's aggregated
figures (connections held over both workers, requests, failures) are checked.

Locust monkey-patches the process that imports it (gevent), so it runs in subprocesses
only: this test never imports it.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connscale.testing import served

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("locust") is None,
        reason="locust is not installed (the 'locust' extra: pip install 'connscale[locust]')",
    ),
]

LOCUSTFILE = Path(__file__).resolve().parents[2] / "examples" / "locustfile.py"
# 600 connections per user, two users per worker: each worker holds fds past 1,023 (where
# select() gives up), as real workers do.
USERS, CONNECTIONS = 4, 600


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def locust(tmp_path: Path, name: str, *arguments: str) -> Iterator[subprocess.Popen[bytes]]:
    """``locust -f examples/locustfile.py ARGUMENTS``, its output in ``tmp_path/NAME.log``."""
    with open(tmp_path / f"{name}.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def test_a_master_and_two_workers_hold_connections_and_report_them(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    summary_file = tmp_path / "summary.json"
    master_port = str(free_port())
    with served(tmp_path / "server", ("--transport", "tcp")) as (_, ready):
        master_arguments = (
            *("--master", "--headless", "--expect-workers", "2"),
            *("--master-bind-host", "127.0.0.1", "--master-bind-port", master_port),
            *("--host", f"tcp://127.0.0.1:{ready['port']}"),
            *("-u", str(USERS), "-r", str(USERS), "--run-time", "7s"),
            *("--connscale-connections", str(CONNECTIONS), "--connscale-mix", "ping=1,echo=1"),
            *("--connscale-summary", str(summary_file), "--csv", "run"),
        )
        worker_arguments = ("--worker", "--master-host", "127.0.0.1", "--master-port", master_port)
        with (
            locust(tmp_path, "master", *master_arguments) as master,
            locust(tmp_path, "worker-1", *worker_arguments) as first,
            locust(tmp_path, "worker-2", *worker_arguments) as second,
        ):
            code = master.wait(90)
            log = (tmp_path / "master.log").read_text(errors="replace")
            assert code == 0, log[-3000:]
            assert first.wait(20) == 0 and second.wait(20) == 0
    summary = json.loads(summary_file.read_text())
    held = USERS * CONNECTIONS
    assert summary["peak_held"] == held, summary
    assert (summary["failed"], summary["dropped"]) == (0, 0)
    workers = summary["processes"]
    assert len(workers) == 2 and all(w["peak_held"] == held // 2 for w in workers.values())
    requests = summary["requests"]
    assert requests["mcp handshake"]["requests"] == held
    assert requests["mcp ping"]["requests"] > 0 and requests["mcp echo"]["requests"] > 0
    assert summary["total"]["failures"] == 0
    # Locust's own aggregated figures agree with the summary.
    with open(tmp_path / "run_stats.csv", newline="") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert int(rows["Aggregated"]["Request Count"]) == summary["total"]["requests"]
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert int(rows["handshake"]["Request Count"]) == held
    assert f"peak {held} connections held" in log
