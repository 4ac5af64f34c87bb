"""Measuring one server: settling, plateaus, the timeline, kernel sockets, fits, GC pauses.

At each plateau: the ramp has finished, the server's memory has settled (two readings
within a tolerance), then several readings of its processes' memory summed over workers
(USS, PSS, RSS from one ``smaps_rollup`` read each) give medians. The kernel part is
counted from the server's own sockets (its fds), never as a system-wide difference that
moves with every other process; the system-wide sockstat figures are kept, labelled so.
The load generator's own USS is read at the same plateaus: its cost per held connection.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import time
from collections.abc import Callable, Sequence

import psutil

from connscale.bench.config import BenchConfig
from connscale.bench.lifecycle import RunningServer
from connscale.core.stats import ScalingResult
from connscale.errors import ConfigurationError, MeasurementError
from connscale.memory import GroupSample, kernel_sockets, process_sockets, sample_group
from connscale.profile import scaling
from connscale.report.schema import GCStats, Plateau, Scaling, ServerResult, TimePoint
from connscale.server.stats import WorkerStats, read_worker_stats, stats_path


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (processes that exited count 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _median_int(values: Sequence[int | None]) -> int | None:
    known = [value for value in values if value is not None]
    return int(statistics.median(known)) if known else None


class Measurer:
    """Samples one server's memory (and its load generator's): settling, plateaus, timeline."""

    def __init__(
        self,
        target: RunningServer,
        config: BenchConfig,
        started: float,
        *,
        loadgen_pids: Callable[[], Sequence[int]] = tuple,
    ) -> None:
        self.target = target
        self.config = config
        self.started = started
        self.loadgen_pids = loadgen_pids
        self.timeline: list[TimePoint] = []
        self.last_timeline = 0.0

    def group(self) -> GroupSample:
        return sample_group(self.target.current_pids())

    def record(self, connections: int, *, every: float = 0.0) -> None:
        now = time.monotonic()
        if every and now - self.last_timeline < every:
            return
        self.last_timeline = now
        with contextlib.suppress(MeasurementError):
            reading = self.group()
            self.timeline.append(
                TimePoint(
                    t=round(now - self.started, 3),
                    connections=connections,
                    uss=reading.uss,
                    rss=reading.rss,
                )
            )

    def settle(self, connections: int) -> bool:
        """Wait until two successive readings differ by less than the tolerance."""
        config = self.config
        deadline = time.monotonic() + config.settle_timeout
        previous: int | None = None
        while time.monotonic() < deadline:
            reading = self.group()
            value = reading.uss if reading.uss is not None else reading.rss
            if previous is not None and abs(value - previous) <= config.settle_tolerance * max(
                previous, 1
            ):
                return True
            previous = value
            time.sleep(config.sample_interval)
        return False

    def plateau(self, connections: int) -> Plateau:
        readings = []
        kernel = []
        for index in range(self.config.samples):
            if index:
                time.sleep(self.config.sample_interval)
            reading = self.group()
            readings.append(reading)
            kernel.append(kernel_sockets())
            self.timeline.append(
                TimePoint(
                    t=round(time.monotonic() - self.started, 3),
                    connections=connections,
                    uss=reading.uss,
                    rss=reading.rss,
                )
            )
        sockets = None
        with contextlib.suppress(MeasurementError):
            sockets = process_sockets(self.target.current_pids())
        loadgen_uss = None
        pids = self.loadgen_pids()
        if pids:
            with contextlib.suppress(MeasurementError, ConfigurationError):
                loadgen_uss = sample_group(pids).uss
        return Plateau(
            connections=connections,
            uss=_median_int([r.uss for r in readings]),
            pss=_median_int([r.pss for r in readings]),
            rss=_median_int([r.rss for r in readings]),
            server_sockets=None if sockets is None else sockets.sockets,
            kernel_bytes=None if sockets is None else sockets.kernel_bytes,
            kernel_tcp_bytes=_median_int([k.tcp_mem_bytes for k in kernel]),
            kernel_tcp_sockets=_median_int([k.tcp_inuse for k in kernel]),
            loadgen_uss=loadgen_uss,
            samples=len(readings),
        )


def _fit_points(points: Sequence[tuple[float, float]]) -> ScalingResult | None:
    if len({x for x, _ in points}) < 2:
        return None
    try:
        return scaling(points)
    except ConfigurationError:
        return None


def fit(result: ServerResult) -> None:
    """The fits of a finished server: USS marginal, PSS total and fixed cost per worker,
    kernel bytes per socket, the load generator's bytes per connection.

    A partial run (``complete`` False) publishes no marginal: its plateaus stay recorded.
    """
    plateaus = result.plateaus
    if not plateaus:
        return
    top = plateaus[-1]
    result.pss_total = top.pss
    kernel = [(p.server_sockets, p.kernel_bytes) for p in plateaus]
    per_socket = [b / s for s, b in kernel if s and b is not None]
    if per_socket:
        result.kernel_bytes_per_socket = round(per_socket[-1], 1)
    if not result.complete:
        return
    points = [
        (float(p.connections), float(p.uss if p.uss is not None else p.rss or 0)) for p in plateaus
    ]
    uss = _fit_points(points)
    if uss is not None:
        result.scaling = Scaling(
            fixed_overhead=round(uss.fixed_overhead, 1),
            marginal_bytes=round(uss.marginal_bytes, 2),
            r_squared=round(uss.r_squared, 6),
            step_marginals=[round(step, 2) for step in uss.step_marginals],
            step_cv=None if uss.step_cv is None else round(uss.step_cv, 4),
        )
    pss = _fit_points([(float(p.connections), float(p.pss)) for p in plateaus if p.pss])
    if pss is not None:
        result.fixed_per_worker = round(pss.fixed_overhead / max(result.workers, 1), 1)
    loadgen = _fit_points(
        [(float(p.connections), float(p.loadgen_uss)) for p in plateaus if p.loadgen_uss]
    )
    if loadgen is not None:
        result.loadgen_bytes_per_connection = round(loadgen.marginal_bytes, 1)


def collect_gc(target: RunningServer, timeout: float = 3.0) -> GCStats | None:
    """Ask each worker for its stats (SIGUSR1) and sum their GC pauses."""
    if target.stats_dir is None:
        return None
    sent_at = time.time()
    pids = target.current_pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    found: dict[int, WorkerStats] = {}
    while time.monotonic() < deadline and len(found) < len(pids):
        for pid in pids:
            path = stats_path(target.stats_dir, pid)
            with contextlib.suppress(OSError, MeasurementError):
                if pid not in found and path.stat().st_mtime >= sent_at - 1.0:
                    found[pid] = read_worker_stats(path)
        time.sleep(0.05)
    workers = [stats.gc for stats in found.values() if stats.gc is not None]
    if not workers:
        return None
    pauses = sorted(pause for worker in workers for pause in worker.pauses_ms)

    def quantile(q: float) -> float | None:
        if not pauses:
            return None
        return pauses[min(len(pauses) - 1, int(q * len(pauses)))]

    maxima = [worker.max_ms for worker in workers if worker.max_ms is not None]
    return GCStats(
        collections=sum(worker.collections for worker in workers),
        total_pause_ms=round(sum(worker.total_pause_ms for worker in workers), 3),
        p50_ms=quantile(0.5),
        p99_ms=quantile(0.99),
        max_ms=max(maxima) if maxima else (pauses[-1] if pauses else None),
        pauses_ms=pauses[-2000:],
    )


__all__ = ["Measurer", "collect_gc", "cpu_seconds", "fit"]
