"""The many-connection client: request mixes, results, and real runs against baselines."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.bench.orchestrator import RunningServer, default_servers, running_server
from connscale.errors import ConfigurationError
from connscale.loadgen.swarm import Swarm, parse_mix
from connscale.loadgen.traffic import TrafficResult


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    spec = default_servers(names=["asyncio-protocol"])[0]
    with running_server(spec, tmp_path_factory.mktemp("server")) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_parse_mix() -> None:
    assert parse_mix("ping=0.8,echo=0.2") == (("ping", 0.8), ("echo", 0.2))
    assert parse_mix("ping") == (("ping", 1.0),)
    for bad in ("", "pong=1", "ping=x", "ping=-1", "ping=0", "ping=inf"):
        with pytest.raises(ConfigurationError):
            parse_mix(bad)
    assert parse_mix("get", {"get"}) == (("get", 1.0),)
    with pytest.raises(ConfigurationError, match="carries no requests"):
        parse_mix("ping", frozenset())


@given(st.text(max_size=30))
def test_parse_mix_rejects_garbage_cleanly(spec: str) -> None:
    try:
        kinds = parse_mix(spec)
    except ConfigurationError:
        return
    assert kinds and sum(weight for _, weight in kinds) > 0


def test_traffic_result_round_trips_and_merges() -> None:
    first = TrafficResult(requests=3, errors=1, duration_s=2.0, connections=10)
    for micros in (100, 200, 300):
        first.histogram.record_value(micros)
    copy = TrafficResult.from_dict(first.to_dict())
    assert copy.requests == 3 and copy.errors == 1 and copy.connections == 10
    assert copy.percentile_ms(50) == first.percentile_ms(50) == 0.2
    copy.merge(first)
    assert copy.requests == 6 and copy.histogram.get_total_count() == 6
    assert copy.throughput_rps == 3.0  # the phases overlap: same 2 s
    assert TrafficResult().percentile_ms(99) is None and TrafficResult().max_ms() is None


def _run(swarm: Swarm, seconds: float, until: object = None) -> None:
    deadline = time.monotonic() + seconds
    swarm.run_until(lambda: not swarm.growing, deadline)


def test_swarm_holds_connections_and_drives_traffic(baseline: RunningServer) -> None:
    swarm = Swarm(baseline.host, baseline.port, sources=[("127.0.0.2", 60), ("127.0.0.3", 60)])
    try:
        swarm.grow(100)
        _run(swarm, 20)
        status = swarm.status()
        assert (status.established, status.failed) == (100, 0)
        swarm.start_traffic(duration=0.3, concurrency=8, mix=(("ping", 1), ("echo", 1)))
        assert swarm.run_until(lambda: swarm.traffic_result() is not None, time.monotonic() + 10)
        result = swarm.traffic_result()
        assert result is not None and result.requests > 0 and result.errors == 0
        assert result.histogram.get_total_count() == result.requests
        swarm.start_traffic(duration=0.3, rate=10.0)  # 1000 req/s over 100 connections
        assert swarm.run_until(lambda: swarm.traffic_result() is not None, time.monotonic() + 10)
        open_loop = swarm.traffic_result()
        assert open_loop is not None and 200 <= open_loop.requests <= 400
        swarm.shrink(40)
        assert swarm.status().established == 40
        with pytest.raises(ConfigurationError):
            swarm.grow(1000)  # more than its sources allow
    finally:
        swarm.close_all()


def test_swarm_counts_refused_connections() -> None:
    swarm = Swarm("127.0.0.1", _free_port(), sources=[("127.0.0.2", 50)])
    try:
        swarm.grow(50)
        _run(swarm, 10)
        status = swarm.status()
        assert status.established == 0
        assert status.failed >= 10 and status.failures.get("ECONNREFUSED", 0) >= 10
        assert status.first_error is not None and "ECONNREFUSED" in status.first_error
    finally:
        swarm.close_all()


def test_swarm_fails_handshakes_a_silent_server_never_answers(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        clock = [0.0]
        swarm = Swarm("127.0.0.1", port, handshake_timeout=5.0, clock=lambda: clock[0])
        try:
            swarm.grow(3)
            for _ in range(20):
                swarm.poll(0.01)
            assert swarm.status().connecting == 3
            clock[0] += 10.0  # the handshake timeout passes without any real waiting
            swarm.poll(0.01)
            status = swarm.status()
            assert status.failures.get("timeout") == 3 and status.connecting == 0
        finally:
            swarm.close_all()


def test_swarm_rejects_bad_settings() -> None:
    with pytest.raises(ConfigurationError, match="unknown protocol 'udp'"):
        Swarm("127.0.0.1", 1, protocol="udp")
    with pytest.raises(ConfigurationError, match="path"):
        Swarm("127.0.0.1", 1, protocol="websocket", path="no-slash")
    with pytest.raises(ConfigurationError, match="probe"):
        Swarm("127.0.0.1", 1, protocol="tcp", probe="two\nlines")
    with pytest.raises(ConfigurationError):
        Swarm("127.0.0.1", 1, max_handshakes=0)
