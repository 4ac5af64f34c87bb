"""The multi-process runner against a real baseline server (small and bounded)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from connscale.bench.orchestrator import RunningServer, default_servers, running_server
from connscale.errors import ConfigurationError, TargetRefusedError
from connscale.loadgen.plan import Limits, plan_load
from connscale.loadgen.runner import LoadRunner

LIMITS = Limits(20_000, 20_000, 32768, 60999)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    spec = default_servers(names=["uvloop-protocol"])[0]
    with running_server(spec, tmp_path_factory.mktemp("server")) as server:
        yield server


def test_runner_grows_measures_traffic_and_shrinks(baseline: RunningServer) -> None:
    plan = plan_load(300, limits=LIMITS, processes=2)
    seen: list[tuple[int, int, int]] = []
    runner = LoadRunner(
        plan,
        baseline.host,
        baseline.port,
        max_seconds=60,
        on_progress=lambda e, g, f: seen.append((e, g, f)),
    )
    with runner:
        assert len(runner.pids) == 2
        grown = runner.grow_to(300, timeout=30)
        assert (grown.established, grown.failed) == (300, 0)
        assert seen and seen[-1][1] == 300
        result = runner.traffic(duration=0.3, concurrency=8, mix="ping=0.5,echo=0.5")
        assert result.requests > 0 and result.errors == 0 and result.connections == 300
        assert runner.shrink_to(100).established == 100
        assert runner.status().established == 100
    assert not runner.pids  # every worker ended


def test_split_follows_capacity() -> None:
    plan = plan_load(10, limits=LIMITS, processes=3)
    runner = LoadRunner(plan, "127.0.0.1", 9, max_seconds=5)
    with runner:
        assert runner.split(10) == [4, 3, 3]
        assert runner.split(1) == [1, 0, 0]
        with pytest.raises(ConfigurationError):
            runner.split(11)


def test_refused_target_raises_target_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plan = plan_load(50, limits=LIMITS)
    with (
        LoadRunner(plan, "127.0.0.1", port, max_seconds=30) as runner,
        pytest.raises(TargetRefusedError, match="ECONNREFUSED"),
    ):
        runner.grow_to(50, timeout=20)
