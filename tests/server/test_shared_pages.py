"""Forked workers share their start-up pages: the PSS of a server with N idle workers grows
far less than N times what one worker costs, as long as the workers are forked (the
default). Spawned workers, which import everything anew, are the control: each brings its
own copy, so the same measurement grows by about a whole worker per worker."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from connscale.memory import sample_group
from support import served

WORKERS = 4


def total_pss(tmp_path: Path, workers: int, start_method: str) -> int:
    """PSS summed over the supervisor and its workers, idle, once every worker listens (one
    worker: the server is that one process)."""
    arguments = ("--workers", str(workers), "--start-method", start_method)
    folder = tmp_path / f"{start_method}-{workers}"
    folder.mkdir()
    with served(folder, *arguments) as (_process, ready):
        pids = [ready["supervisor_pid"], *ready["pids"]]
        readings = [sample_group(pids).pss for _ in range(3)]
    if any(reading is None for reading in readings):
        pytest.skip("PSS is not readable here (smaps_rollup)")
    return int(statistics.median(r for r in readings if r is not None))


def test_forked_workers_share_their_start_up_pages(tmp_path: Path) -> None:
    one = total_pss(tmp_path, 1, "fork")
    many = total_pss(tmp_path, WORKERS, "fork")
    spawned_one = total_pss(tmp_path, 1, "spawn")
    spawned_many = total_pss(tmp_path, WORKERS, "spawn")
    added = (many - one) / (WORKERS - 1)  # what each further forked worker costs
    spawned_added = (spawned_many - spawned_one) / (WORKERS - 1)
    # A forked worker adds less than half of what a one-process server costs ...
    assert added < one / 2, (added, one)
    # ... and less than half of what a spawned worker adds, measured the same way.
    assert added < spawned_added / 2, (added, spawned_added)


def test_a_tcp_supervisor_loads_nothing_only_http_uses() -> None:
    """What a forked TCP worker shares must not include what it never uses: AES-GCM
    (cryptography and OpenSSL, ~7 MB mapped) seals only HTTP sessions and modern request
    state, so a TCP supervisor prepared for forking has not imported it."""
    probe = (
        "import sys\n"
        "from connscale.server.config import ServerConfig\n"
        "from connscale.server.supervisor import _prepare_fork, resolve_app\n"
        "for transport in ('tcp', 'http'):\n"
        "    config = ServerConfig(transport=transport, workers=2)\n"
        "    _prepare_fork(config, resolve_app(config))\n"
        "    print(transport, 'cryptography' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split() == ["tcp", "False", "http", "True"]
