"""A short soak (the long one is ``python -m benchmarks.soak --minutes 30``): no leak, no loss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["epoll", "asyncio"])
def test_short_soak_churn_and_steady_traffic_do_not_leak(tmp_path: Path, engine: str) -> None:
    out = tmp_path / "soak.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.soak",
            "--seconds",
            "8",
            "--warmup",
            "0.35",
            "--engine",
            engine,
            "--churn-rate",
            "40",
            "--steady",
            "8",
            "--handshake-timeout",
            "1",
            "--out",
            str(out),
        ],
        cwd=REPOSITORY,
        capture_output=True,
        timeout=60,
        check=False,
    )
    summary = json.loads(out.read_text())
    assert summary["sessions_churned"] >= 150 and summary["requests"] >= 200
    assert summary["churn_failures"] == 0 and summary["request_failures"] == 0
    assert summary["samples"] >= 20
    assert not summary["leak"], summary["verdict"]  # the profiler's trend over the server's USS
    assert completed.returncode == 0, completed.stderr.decode()[-2000:]
