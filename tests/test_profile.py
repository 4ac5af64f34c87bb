"""Profiler snapshots, per-unit measurement (acceptance: exact K bytes per unit), leak checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from connscale.clock import FakeClock
from connscale.errors import ConfigurationError, NotAvailableError
from connscale.memory import MemorySample
from connscale.profile import (
    Profiler,
    leak_check,
    measure_per_unit,
    measure_process,
    scaling,
    trend,
)

# A process that holds exactly N blocks of K bytes, each page touched so it is resident.
HOLDER = textwrap.dedent(
    """
    import sys
    size = int(sys.argv[1])
    marks = b"\\x01" * len(range(0, size, 4096))
    held = []
    for line in sys.stdin:
        want = int(line)
        while len(held) < want:
            block = bytearray(size)
            block[::4096] = marks
            held.append(block)
        del held[want:]
        sys.stdout.write("ok\\n")
        sys.stdout.flush()
    """
)


@pytest.fixture
def holder(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], int]]:
    size: int = request.param
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield child, size
    finally:
        child.kill()
        child.wait(5)


@pytest.mark.parametrize("holder", [64 << 10, 256 << 10, 1 << 20], indirect=True)
def test_marginal_of_a_process_is_exactly_k_bytes_per_unit(
    holder: tuple[subprocess.Popen[str], int],
) -> None:
    child, size = holder
    assert child.stdin is not None and child.stdout is not None

    def set_units(n: int) -> None:
        child.stdin.write(f"{n}\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        assert child.stdout.readline() == "ok\n"  # type: ignore[union-attr]

    set_units(1)  # warm-up: the interpreter's own first-use allocations
    result = measure_process(set_units, [10, 20, 40, 60, 80], pid=child.pid, field="uss")
    assert result.marginal_bytes == pytest.approx(size, rel=0.05), result
    assert result.step_cv is not None and result.step_cv < 0.05, result.step_marginals
    assert result.check(max_marginal_bytes=size * 1.05, max_cv=0.05).ok


def test_inherited_scenario_in_process() -> None:
    class Connection:
        def __init__(self) -> None:
            self.buffer = bytearray(1024)
            self.metadata = {"id": 1, "peer": "127.0.0.1", "state": "open"}

    result = measure_per_unit(Connection, (10, 25, 50, 100))
    assert 1024 < result.marginal_bytes < 2048
    assert result.step_cv is not None and result.step_cv < 0.1


def test_measure_per_unit_with_repeats_and_bad_steps() -> None:
    result = measure_per_unit(lambda: bytearray(4096), (5, 10, 20), repeats=2)
    assert result.marginal_bytes == pytest.approx(4096, rel=0.05)
    assert len(result.points) == 6
    with pytest.raises(ConfigurationError):
        measure_per_unit(object, (10,))
    with pytest.raises(ConfigurationError):
        measure_per_unit(object, (10, 5))
    with pytest.raises(ConfigurationError):
        measure_per_unit(object, (5, 10), repeats=0)


def test_measure_process_marks_missing_figures() -> None:
    def no_uss() -> MemorySample:
        return MemorySample(
            pid=1, uss=None, pss=None, rss=1, swap=None, fds=None, py_heap_blocks=None, timestamp=0
        )

    with pytest.raises(NotAvailableError, match="uss"):
        measure_process(lambda n: None, [1, 2], sampler=no_uss)


def test_planted_leak_is_flagged() -> None:
    leaked: list[bytearray] = []
    result = leak_check(lambda: leaked.append(bytearray(1024)), iterations=20)
    assert result.leak, result.reason
    assert result.slope == pytest.approx(1024, rel=0.2)


def test_clean_loop_gives_no_false_leak_in_20_runs() -> None:
    def clean() -> None:
        scratch = [bytearray(256) for _ in range(20)]
        {"k": scratch, "v": str(len(scratch))}.clear()

    for run in range(20):
        result = leak_check(clean, iterations=15, warmup=3)
        assert not result.leak, f"run {run}: {result.reason}"


def test_profiler_snapshots_record_and_fits() -> None:
    clock = FakeClock()
    rss = iter(range(10_000_000, 20_000_000, 1_000_000))

    def sampler() -> MemorySample:
        value = next(rss)
        return MemorySample(
            pid=1,
            uss=value,
            pss=value,
            rss=value,
            swap=0,
            fds=4,
            py_heap_blocks=None,
            timestamp=clock(),
        )

    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    profiler = Profiler(sampler=sampler, clock=clock, sleep=sleep, record_gc=True)
    with profiler:
        profiler.snapshot("idle", connections=0)
        profiler.measure_after(2.0, "ramp", connections=100)
        profiler.measure_after(2.0, connections=200)
    record = profiler.record()
    assert slept == [2.0, 2.0]
    assert record.duration == pytest.approx(4.0)
    assert [s.label for s in record.snapshots] == ["idle", "ramp", "#2"]
    fit = record.scaling("uss")
    assert fit.marginal_bytes == pytest.approx(10_000)
    assert record.trend("rss").slope == pytest.approx(500_000)
    assert record.gc is not None
    data = record.to_dict()
    assert data["snapshots"][1]["connections"] == 100
    with pytest.raises(ConfigurationError):
        profiler.measure_after(-1)


def test_plateau_takes_the_median() -> None:
    values = iter([5, 100, 6, 7, 8])

    def sampler() -> MemorySample:
        v = next(values)
        return MemorySample(
            pid=1, uss=v, pss=None, rss=v, swap=0, fds=1, py_heap_blocks=None, timestamp=0.0
        )

    profiler = Profiler(sampler=sampler, clock=FakeClock(), sleep=lambda s: None)
    snap = profiler.plateau(50, samples=3)
    assert snap.memory.uss == 6 and snap.memory.pss is None and snap.connections == 50
    with pytest.raises(ConfigurationError):
        profiler.plateau(50, samples=0)


def test_tracemalloc_top_sites_show_where_memory_went() -> None:
    kept: list[bytes] = []
    profiler = Profiler(trace_allocations=True, record_gc=False)
    with profiler:
        profiler.snapshot("before")
        kept.extend(b"x" * 10_000 for _ in range(50))
        profiler.snapshot("after")
    sites = profiler.record().top_sites
    assert sites, "expected at least one growing site"
    assert "test_profile.py" in sites[0].location
    assert sites[0].size_diff >= 50 * 10_000
    assert profiler.record().snapshots[1].traced_bytes is not None


def test_profiler_stop_before_start() -> None:
    with pytest.raises(ConfigurationError):
        Profiler().stop()


def test_reexported_statistics() -> None:
    assert scaling([(1, 2), (2, 4)]).marginal_bytes == pytest.approx(2)
    assert trend([(0, 0), (1, 1), (2, 2)]).slope == pytest.approx(1)


def test_a_forked_server_costs_its_pss_sum_not_its_uss_sum() -> None:
    # Issue 16: workers forked after start-up share copy-on-write pages. Neither process's
    # USS holds a shared page; the PSS sum counts each once: the honest total.
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    from connscale.memory import sample_tree
    from connscale.profile import Profiler

    code = textwrap.dedent(
        """
        import os, sys, time
        shared = bytearray(os.urandom(1 << 20) * 24)  # 24 MiB, touched, before the fork
        if os.fork() == 0:
            time.sleep(30); os._exit(0)
        print("ready", flush=True)
        time.sleep(30)
        """
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, process_group=0
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        tree, processes = sample_tree(server.pid)
        assert processes == 2 and tree.pss is not None and tree.uss is not None
        assert tree.pss - tree.uss > 20 * 2**20  # the shared 24 MiB: in PSS, in no USS
        with Profiler(server.pid, include_children=True, record_gc=False) as profiler:
            snapshot = profiler.snapshot("forked")
        assert snapshot.memory.pss is not None and snapshot.memory.pss >= tree.pss * 0.9
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(5)
