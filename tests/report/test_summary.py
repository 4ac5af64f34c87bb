"""SUMMARY.md: one table of every server, targets judged from the run."""

from __future__ import annotations

from connscale.bench.orchestrator import machine
from connscale.report.schema import Plateau, Run, Scaling, ServerResult, Traffic
from connscale.report.summary import (
    SUMMARY_COLUMNS,
    check_targets,
    latency_at_max,
    summary_markdown,
)


def _run(*servers: ServerResult, incomplete: bool = False) -> Run:
    return Run(
        created="2026-12-01T00:00:00+00:00",
        command="connscale bench",
        machine=machine(),
        servers=list(servers),
        incomplete=incomplete,
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
    assert [c.met for c in checks.values()] == [True, True, True, None]
    assert (
        "ratio 1.50" in checks["ping throughput at 10,000 connections vs asyncio-protocol"].detail
    )
    reference.scaling = Scaling(fixed_overhead=0, marginal_bytes=1, r_squared=1, step_cv=0.2)
    assert check_targets(_run(reference))[0].met is False
    assert check_targets(_run(slow))[0].met is None


def test_a_listen_run_is_judged_by_bytes_per_stream() -> None:
    listen = ServerResult(
        name="connscale-listen",
        protocol="mcp-listen",
        max_connections=16_000,
        scaling=Scaling(fixed_overhead=1e7, marginal_bytes=120, r_squared=0.99, step_cv=0.1),
    )
    checks = {c.name: c for c in check_targets(_run(listen))}
    check = checks["marginal USS per open subscriptions/listen stream <= 150 B"]
    assert check.met is True and check.detail == "120 B per stream"
    listen.scaling = Scaling(fixed_overhead=1e7, marginal_bytes=151, r_squared=0.99)
    assert not next(c for c in check_targets(_run(listen)) if "listen" in c.name).met
    listen.scaling = None
    assert next(c for c in check_targets(_run(listen)) if "listen" in c.name).met is None
    tcp = ServerResult(name="connscale-epoll", protocol="mcp", max_connections=1)
    assert not [c for c in check_targets(_run(tcp)) if "listen" in c.name]


def test_every_protocol_shares_one_table() -> None:
    servers = [
        ServerResult(
            name=name,
            protocol=protocol,
            scaling=Scaling(fixed_overhead=1e6, marginal_bytes=marginal, r_squared=1.0),
        )
        for name, protocol, marginal in (
            ("my-ws", "websocket", 48_000),
            ("my-tcp", "tcp", 5_300),
            ("asyncio-protocol", "mcp", 2_800),
        )
    ]
    text = summary_markdown(_run(*servers))
    rows = [line for line in text.splitlines() if line.startswith("| my-") or "| asyncio" in line]
    assert len(rows) == 3
    assert all(row.count("|") == len(SUMMARY_COLUMNS) + 1 for row in rows)
    assert "| my-ws | websocket |" in text and "48,000" in text
    assert "system-wide" in text or "not a system-wide" in text


def test_a_partial_server_shows_no_marginal_and_an_incomplete_run_says_so() -> None:
    partial = ServerResult(
        name="sdk",
        protocol="mcp-http",
        plateaus=[Plateau(connections=1000, uss=10**8)],
        error="the server dropped 809 of 2,000 held connections",
        complete=False,
    )
    text = summary_markdown(_run(partial, incomplete=True))
    assert "partial run: none" in text and "809 of 2,000" in text
    assert "INCOMPLETE RUN" in text
