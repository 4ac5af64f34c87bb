"""Bench orchestration: plateau ladders, server lists, targets and the summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from connscale.bench.orchestrator import (
    BenchConfig,
    _per_socket,
    check_targets,
    custom_server,
    default_plateaus,
    default_servers,
    latency_at_max,
    machine,
    measure_server,
    summary_markdown,
    write_outputs,
)
from connscale.errors import ConfigurationError
from connscale.report.schema import Run, Scaling, ServerResult, Traffic, read_run


def test_default_plateaus() -> None:
    assert default_plateaus(100_000) == (
        1000,
        5000,
        10_000,
        15_000,
        25_000,
        50_000,
        75_000,
        100_000,
    )
    assert default_plateaus(1_000_000)[-4:] == (250_000, 500_000, 750_000, 1_000_000)
    assert default_plateaus(12_000) == (1000, 5000, 10_000, 12_000)
    assert default_plateaus(300) == (300,)
    with pytest.raises(ConfigurationError):
        default_plateaus(0)


def test_default_servers_give_the_reference_server_enough_workers() -> None:
    specs = default_servers(max_connections=100_000)
    reference = specs[0]
    assert reference.name == "connscale-epoll" and reference.workers == 8
    assert "--workers" in reference.argv and "8" in reference.argv
    assert reference.max_connections / reference.workers < 20_000
    assert [s.name for s in specs[1:]] == ["asyncio-streams", "asyncio-protocol", "uvloop-protocol"]
    assert all(s.max_connections == 15_000 for s in specs[1:])
    assert default_servers(max_connections=1_000_000)[0].workers == 80
    http = default_servers(transport="http")
    assert [s.name for s in http] == ["connscale-http", "mcp-sdk"]
    assert [s.name for s in default_servers(names=["connscale", "uvloop-protocol"])] == [
        "connscale-epoll",
        "uvloop-protocol",
    ]
    with pytest.raises(ConfigurationError, match="unknown server"):
        default_servers(names=["nginx"])


def test_custom_server_spec() -> None:
    spec = custom_server("python -m myserver --fast", 9000, transport="tcp", max_connections=10)
    assert spec.argv == ("python", "-m", "myserver", "--fast") and spec.port == 9000
    with pytest.raises(ConfigurationError):
        custom_server("", 9000, transport="tcp", max_connections=10)
    with pytest.raises(ConfigurationError):
        custom_server("x", 0, transport="tcp", max_connections=10)


def test_kernel_bytes_per_socket_is_a_difference() -> None:
    assert _per_socket((1000, 0, 10), (1000 + 4500 * 100, 4096, 110)) == 4541.0
    assert _per_socket((None, 0, 10), (5, 0, 20)) is None
    assert _per_socket((1, 0, 10), (5, 0, 10)) is None


def _run(*servers: ServerResult) -> Run:
    return Run(
        created="2026-11-23T00:00:00+00:00",
        command="connscale bench",
        machine=machine(),
        servers=list(servers),
    )


def _traffic(rps: float, p99: float = 1.0) -> Traffic:
    return Traffic(
        connections=10_000, requests=int(rps), duration_s=1.0, throughput_rps=rps, p99_ms=p99
    )


def test_targets_are_judged_from_the_run() -> None:
    reference = ServerResult(
        name="connscale-epoll",
        workers=8,
        max_connections=100_000,
        scaling=Scaling(fixed_overhead=1e7, marginal_bytes=300, r_squared=0.99, step_cv=0.03),
        traffic=_traffic(30_000),
        latency=_traffic(1000, p99=12.5),
    )
    assert latency_at_max(reference) is not None
    slow = ServerResult(name="asyncio-protocol", traffic=_traffic(20_000))
    fast = ServerResult(name="uvloop-protocol", traffic=_traffic(40_000))
    checks = {c.name.split(" (")[0]: c for c in check_targets(_run(reference, slow, fast))}
    met = [c.met for c in checks.values()]
    assert met == [True, True, True, None]
    assert (
        "ratio 1.50" in checks["ping throughput at 10,000 connections vs asyncio-protocol"].detail
    )
    assert "ratio 0.75" in checks["ping throughput at 10,000 connections vs uvloop-protocol"].detail
    reference.scaling = Scaling(fixed_overhead=0, marginal_bytes=1, r_squared=1, step_cv=0.2)
    assert check_targets(_run(reference))[0].met is False
    missing = check_targets(_run(slow))
    assert missing[0].met is None


def test_outputs_are_written(tmp_path: Path) -> None:
    run = _run(ServerResult(name="asyncio-protocol", error="not run: testing"))
    paths = write_outputs(run, tmp_path / "out")
    assert read_run(tmp_path / "out" / "RUN.json").servers[0].name == "asyncio-protocol"
    summary = (tmp_path / "out" / "SUMMARY.md").read_text()
    assert "| asyncio-protocol |" in summary and "not run: testing" in summary
    assert summary == summary_markdown(run)
    assert all(path.exists() for path in paths)


def test_an_unavailable_server_is_recorded_not_fatal(tmp_path: Path) -> None:
    spec = default_servers(names=["asyncio-protocol"])[0]
    from dataclasses import replace

    result = measure_server(
        replace(spec, unavailable="missing here"), BenchConfig.quick(), tmp_path
    )
    assert result.error == "not run: missing here" and not result.plateaus


def test_a_server_that_dies_at_start_is_a_recorded_error(tmp_path: Path) -> None:
    spec = custom_server("false", 1, transport="tcp", max_connections=1000)
    result = measure_server(spec, BenchConfig.quick(), tmp_path)
    assert result.error is not None and "exited" in result.error


def test_measure_server_ramps_and_fits(tmp_path: Path) -> None:
    spec = default_servers(names=["asyncio-protocol"], max_connections=600)[0]
    config = BenchConfig(
        plateaus=(200, 400, 600),
        samples=2,
        sample_interval=0.02,
        settle_timeout=1.0,
        settle_tolerance=0.05,
        throughput_connections=400,
        traffic_duration=0.3,
        traffic_concurrency=8,
        latency_rate=100.0,
        grow_timeout=30.0,
        max_seconds=60.0,
    )
    result = measure_server(spec, config, tmp_path)
    assert result.error is None, result.error
    assert [p.connections for p in result.plateaus] == [200, 400, 600]
    assert all(p.uss and p.samples == 2 for p in result.plateaus)
    assert result.scaling is not None and len(result.scaling.step_marginals) == 2
    assert result.traffic is not None and result.traffic.connections == 400
    assert result.traffic.requests > 0 and latency_at_max(result) is not None
    assert result.setup_cpu_us is not None and result.timeline
    assert result.gc is not None and result.gc.collections >= 0
