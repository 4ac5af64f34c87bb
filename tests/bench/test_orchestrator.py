"""Bench orchestration on real loopback servers: ramps and fits, honest failures, Ctrl-C,
and agreement with an independent reading of the server's memory."""

from __future__ import annotations

import socket
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from connscale.bench.config import BenchConfig, default_plateaus, plateaus_for
from connscale.bench.lifecycle import RunningServer
from connscale.bench.observer import BenchObserver
from connscale.bench.orchestrator import (
    failures,
    machine,
    measure_server,
    run_bench,
    write_outputs,
)
from connscale.bench.targets import ServerSpec, custom_server, default_servers
from connscale.errors import ConfigurationError
from connscale.report.schema import Plateau, Run, ServerResult, read_run

SMALL = BenchConfig(
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def test_a_server_capped_below_the_ladder_gets_it_scaled_down() -> None:
    ladder = (1000, 2000, 4000, 8000, 16_000)
    assert plateaus_for(ladder, 1000, scale=True) == (62, 125, 250, 500, 1000)
    assert plateaus_for(ladder, 1000) == (1000,)  # without scaling: what fits
    assert plateaus_for(ladder, 4000, scale=True) == (1000, 2000, 4000)  # three fit
    assert plateaus_for((200, 500, 1000), 1000, scale=True) == (200, 500, 1000)
    assert plateaus_for((1000, 2000), 500, scale=True) == (250, 500)
    assert plateaus_for((10,), 3, scale=True) == (3,)


def test_measure_server_notes_a_scaled_ladder(tmp_path: Path) -> None:
    spec = default_servers(names=["asyncio-protocol"], max_connections=600)[0]
    spec = replace(spec, max_connections=150, scale_plateaus=True)
    result = measure_server(spec, replace(SMALL, throughput_connections=50), tmp_path)
    assert result.error is None, result.error
    assert [p.connections for p in result.plateaus] == [50, 100, 150]
    assert any("scaled down to this server's cap of 150" in note for note in result.notes)
    assert result.scaling is not None


def test_outputs_are_written(tmp_path: Path) -> None:
    run = Run(
        created="2026-12-01T00:00:00+00:00",
        command="connscale bench",
        machine=machine(),
        servers=[ServerResult(name="asyncio-protocol", error="not run: testing", complete=False)],
    )
    paths = write_outputs(run, tmp_path / "out")
    assert read_run(tmp_path / "out" / "RUN.json").servers[0].name == "asyncio-protocol"
    assert "not run: testing" in (tmp_path / "out" / "SUMMARY.md").read_text()
    assert all(path.exists() for path in paths)
    assert failures(run) == []  # a server not run for a missing library is not a failure


def test_an_unavailable_server_is_recorded_not_fatal(tmp_path: Path) -> None:
    spec = default_servers(names=["asyncio-protocol"])[0]
    result = measure_server(replace(spec, unavailable="missing here"), SMALL, tmp_path)
    assert result.error == "not run: missing here" and not result.plateaus


def test_a_server_that_dies_at_start_is_a_recorded_error(tmp_path: Path) -> None:
    spec = custom_server("false", _free_port(), max_connections=1000)
    result = measure_server(spec, SMALL, tmp_path)
    assert result.error is not None and "exited" in result.error and not result.complete


def test_measure_server_ramps_and_fits(tmp_path: Path) -> None:
    spec = default_servers(names=["asyncio-protocol"], max_connections=600)[0]
    result = measure_server(spec, SMALL, tmp_path)
    assert result.error is None, result.error
    assert [p.connections for p in result.plateaus] == [200, 400, 600]
    assert all(p.uss and p.pss and p.samples == 2 for p in result.plateaus)
    assert result.scaling is not None and len(result.scaling.step_marginals) == 2
    assert result.traffic is not None and result.traffic.connections == 400
    assert result.traffic.requests > 0 and result.latency is not None
    assert result.setup_cpu_us is not None and result.timeline
    assert result.gc is not None and result.gc.collections >= 0
    # The server's own sockets: 600 held plus its listener, counted from its fds.
    top = result.plateaus[-1]
    assert top.server_sockets is not None and 600 <= top.server_sockets <= 610
    assert result.pss_total == top.pss and result.fixed_per_worker is not None
    # The load generator's own memory per held connection is recorded.
    assert all(p.loadgen_uss for p in result.plateaus)
    assert result.loadgen_bytes_per_connection is not None


# A server that drops every connection a moment after it holds DROP_AT of them: what an
# idle timeout does to a held plateau.
DROPPING_SERVER = textwrap.dedent(
    """
    import asyncio, sys

    async def main(port, drop_at):
        held = []

        async def handle(reader, writer):
            held.append(writer)
            if len(held) == drop_at:
                await asyncio.sleep(0.1)
                for w in held:
                    w.transport.abort()
                held.clear()
            await reader.read()

        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
    """
)


def test_connections_dropped_during_a_plateau_fail_the_server_without_a_marginal(
    tmp_path: Path,
) -> None:
    script = tmp_path / "dropping.py"
    script.write_text(DROPPING_SERVER)
    port = _free_port()
    spec = custom_server(
        f"{sys.executable} {script} {port} 40", port, protocol="tcp", max_connections=40
    )
    config = replace(SMALL, plateaus=(20, 30, 40), samples=3, sample_interval=0.2)
    result = measure_server(spec, config, tmp_path)
    assert not result.complete and result.error is not None
    assert "dropped" in result.error and "40 held connections" in result.error
    assert "first: " in result.error
    assert [p.connections for p in result.plateaus] == [20, 30]  # kept, honestly
    assert result.scaling is None  # no marginal from a partial run
    assert any("partial run" in note for note in result.notes)
    run = Run(created="x", command="x", machine=machine(), servers=[result])
    assert failures(run) == [result]


class _Interrupt(BenchObserver):
    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        if plateau.connections >= 400:
            raise KeyboardInterrupt


def test_ctrl_c_returns_the_run_so_far_marked_incomplete(tmp_path: Path) -> None:
    specs = default_servers(names=["asyncio-protocol", "uvloop-protocol"], max_connections=600)
    run = run_bench(specs, SMALL, command="test", observer=_Interrupt(), workdir=tmp_path)
    assert run.incomplete and len(run.servers) == 1
    interrupted = run.servers[0]
    # The plateau at 400 was measured before the Ctrl-C arrived: it is kept.
    assert [p.connections for p in interrupted.plateaus] == [200, 400]
    assert "interrupted" in (interrupted.error or "") and interrupted.scaling is None
    write_outputs(run, tmp_path / "out")
    again = read_run(tmp_path / "out" / "RUN.json")
    assert again.incomplete and len(again.servers[0].plateaus) == 2
    assert "INCOMPLETE" in (tmp_path / "out" / "SUMMARY.md").read_text()


def test_a_run_refuses_duplicate_names_and_an_empty_list() -> None:
    spec = default_servers(names=["asyncio-protocol"])[0]
    with pytest.raises(ConfigurationError, match="twice"):
        run_bench([spec, spec], SMALL, command="x")
    with pytest.raises(ConfigurationError, match="nothing to measure"):
        run_bench([], SMALL, command="x")


def _independent_uss(pid: int) -> int:
    """Private_Clean + Private_Dirty of smaps_rollup, parsed here without connscale."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Private_Clean", "Private_Dirty", "Private_Hugetlb"):
            total += int(rest.split()[0]) * 1024
    return total


class _Independent(BenchObserver):
    def __init__(self) -> None:
        self.pids: tuple[int, ...] = ()
        self.readings: dict[int, int] = {}

    def target_started(self, spec: ServerSpec, target: RunningServer) -> None:
        self.pids = target.current_pids()

    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        self.readings[plateau.connections] = sum(_independent_uss(pid) for pid in self.pids)


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs smaps_rollup")
def test_the_marginal_agrees_with_an_independent_smaps_rollup_reading(tmp_path: Path) -> None:
    # A plain asyncio TCP server (one Task and a stream pair per connection, ~5 KB each):
    # bench's slope against the same server's USS read straight from /proc at two counts.
    spec = default_servers(names=["asyncio-tcp-echo"], max_connections=1500)[0]
    config = replace(SMALL, plateaus=(500, 1500), samples=3, traffic_duration=0.2)
    observer = _Independent()
    result = measure_server(spec, config, tmp_path, observer)
    assert result.error is None, result.error
    assert result.scaling is not None
    low, high = observer.readings[500], observer.readings[1500]
    independent = (high - low) / 1000
    assert independent > 1000  # a Task per connection costs kilobytes: a real signal
    assert result.scaling.marginal_bytes == pytest.approx(independent, rel=0.05)
