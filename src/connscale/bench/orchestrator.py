"""Run the connection benchmark: servers side by side, ramped through the same plateaus.

For each server: start it (ready-file contract of ``connscale serve``), ramp real
connections through plateaus, and at each plateau wait until the ramp has settled (all
handshakes answered, the server's memory steady), then take several samples of the
server processes' memory summed over workers, plus kernel socket memory, and keep the
median. The fit (``connscale.profile.scaling``) gives the fixed overhead and the marginal
bytes per connection as a slope, never total/N. Then an open-loop latency phase at the
top plateau, and a closed-loop throughput phase at a common connection count so servers
compare fairly. GC pauses come from the server's SIGUSR1 stats when it writes them.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psutil

from connscale.bench.baselines import HTTP_BASELINES, TCP_BASELINES, sdk_available
from connscale.errors import ConfigurationError, LoadError, MeasurementError, ServerError
from connscale.loadgen.client import TrafficResult
from connscale.loadgen.plan import plan_load, read_limits
from connscale.loadgen.runner import LoadRunner
from connscale.memory import kernel_sockets, sample_group
from connscale.profile import scaling
from connscale.report.schema import (
    GCStats,
    Machine,
    Plateau,
    Run,
    Scaling,
    ServerResult,
    TimePoint,
    Traffic,
    write_run,
)

#: Connections one reference-server worker is given (well under 20,000 open files).
CONNECTIONS_PER_WORKER = 12_500
#: How far one baseline process goes: under the per-process open-files limit.
BASELINE_MAX_CONNECTIONS = 15_000
DEFAULT_MAX_CONNECTIONS = 100_000
QUICK_PLATEAUS = (200, 500, 1000)
#: Targets the summary judges (issue 5).
TARGET_STEP_CV = 0.05
TARGET_P99_MS = 50.0


@dataclass(frozen=True)
class ServerSpec:
    """A server to measure: its command and how far to take it."""

    name: str
    argv: tuple[str, ...]
    transport: str = "tcp"
    workers: int = 1
    max_connections: int = BASELINE_MAX_CONNECTIONS
    #: None: the command speaks the ready-file contract; else wait for this port to accept.
    port: int | None = None
    host: str = "127.0.0.1"
    unavailable: str | None = None  # why it cannot run here (recorded, not fatal)


@dataclass(frozen=True)
class BenchConfig:
    """How the benchmark runs; ``quick()`` and ``default()`` give the two usual shapes."""

    plateaus: tuple[int, ...]
    samples: int = 5
    sample_interval: float = 0.2
    settle_timeout: float = 15.0
    settle_tolerance: float = 0.005
    throughput_connections: int = 10_000
    traffic_duration: float = 5.0
    traffic_concurrency: int = 64
    latency_rate: float = 1000.0  # open-loop requests per second over all connections
    mix: str = "ping"
    grow_timeout: float = 300.0
    start_timeout: float = 30.0
    max_seconds: float = 1800.0  # hard limit on each load worker's life

    @classmethod
    def default(cls, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> BenchConfig:
        return cls(plateaus=default_plateaus(max_connections))

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(
            plateaus=QUICK_PLATEAUS,
            samples=3,
            sample_interval=0.05,
            settle_timeout=3.0,
            settle_tolerance=0.02,
            throughput_connections=1000,
            traffic_duration=1.0,
            traffic_concurrency=16,
            latency_rate=200.0,
            grow_timeout=30.0,
            start_timeout=20.0,
            max_seconds=120.0,
        )


def default_plateaus(max_connections: int) -> tuple[int, ...]:
    """1K, 5K, 10K, 15K (where baselines stop), then quarters of ``max_connections``."""
    if max_connections < 1:
        raise ConfigurationError("max_connections must be at least 1")
    levels = {level for level in (1000, 5000, 10_000, 15_000) if level <= max_connections}
    if max_connections > BASELINE_MAX_CONNECTIONS:
        quarter = max_connections / 4
        levels.update(round(quarter * step) for step in range(1, 5))
    levels.add(max_connections)
    return tuple(sorted(level for level in levels if level > 0))


def default_servers(
    *,
    transport: str = "tcp",
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    names: Sequence[str] | None = None,
    quick: bool = False,
) -> list[ServerSpec]:
    """The reference server (enough workers for ``max_connections``) and the baselines."""
    python = sys.executable
    workers = 2 if quick else max(1, math.ceil(max_connections / CONNECTIONS_PER_WORKER))
    engine = "epoll" if transport == "tcp" else None
    serve = [python, "-m", "connscale", "serve", "--transport", transport, "--port", "0"]
    serve += ["--workers", str(workers)]
    if engine:
        serve += ["--engine", engine]
    specs = [
        ServerSpec(
            name=f"connscale-{engine or transport}",
            argv=tuple(serve),
            transport=transport,
            workers=workers,
            max_connections=max_connections,
            unavailable=_reference_server_missing(),
        )
    ]
    baselines = TCP_BASELINES if transport == "tcp" else HTTP_BASELINES
    for baseline in baselines:
        missing = None
        if baseline == "mcp-sdk" and not sdk_available():
            missing = "the official MCP SDK is not installed (pip install 'connscale[sdk]')"
        specs.append(
            ServerSpec(
                name=baseline,
                argv=(python, "-m", "connscale.bench.baselines", baseline, "--port", "0"),
                transport=transport,
                max_connections=min(max_connections, BASELINE_MAX_CONNECTIONS),
                unavailable=missing,
            )
        )
    if names:
        known = {spec.name for spec in specs} | {"connscale"}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigurationError(
                f"unknown server(s) {unknown}; choose from {sorted(known - {'connscale'})}"
            )
        specs = [
            spec
            for spec in specs
            if spec.name in names or ("connscale" in names and spec.name.startswith("connscale"))
        ]
    return specs


def custom_server(command: str, port: int, *, transport: str, max_connections: int) -> ServerSpec:
    """A user's own server: started from ``command``, measured once ``port`` accepts."""
    argv = tuple(shlex.split(command))
    if not argv:
        raise ConfigurationError("--target-cmd is empty")
    if not 0 < port < 65536:
        raise ConfigurationError(f"--port must be 1..65535, not {port}")
    return ServerSpec(
        name=Path(argv[0]).name if len(argv) == 1 else f"{Path(argv[0]).name} {argv[1]}",
        argv=argv,
        transport=transport,
        max_connections=max_connections,
        port=port,
    )


def _reference_server_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("connscale.cli.serve") is None:
        return "`connscale serve` is not part of this build"
    return None


# --- observing progress ---------------------------------------------------------------------


class BenchObserver:
    """Hooks the CLI uses to draw progress; every method does nothing by default."""

    def server_started(self, spec: ServerSpec, plateaus: Sequence[int]) -> None:
        """A server is up and about to be ramped through ``plateaus``."""

    def ramp(self, spec: ServerSpec, established: int, goal: int) -> None:
        """Connections are opening."""

    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        """A plateau was measured."""

    def phase(self, spec: ServerSpec, text: str) -> None:
        """A named phase (settling, traffic, ...) began."""

    def server_done(self, spec: ServerSpec, result: ServerResult) -> None:
        """A server is finished (``result.error`` says if it stopped early)."""


# --- a running server -------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A started server: where it listens and which processes hold its connections."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    pids: tuple[int, ...]
    stats_dir: Path | None
    dynamic_pids: bool = False  # a custom command: its workers are its descendants
    notes: list[str] = field(default_factory=list)

    def current_pids(self) -> tuple[int, ...]:
        if not self.dynamic_pids:
            return self.pids
        try:
            root = psutil.Process(self.process.pid)
            found = [root.pid] + [child.pid for child in root.children(recursive=True)]
        except psutil.Error:
            return self.pids
        return tuple(found)


@contextlib.contextmanager
def running_server(
    spec: ServerSpec, workdir: Path, *, start_timeout: float = 30.0
) -> Iterator[RunningServer]:
    """Start the server in its own process group; stop the whole group afterwards."""
    stem = spec.name.replace(" ", "_")
    log_path = workdir / f"{stem}.log"
    log = log_path.open("wb")
    ready_file = workdir / f"{stem}.ready.json"
    stats_dir: Path | None = None
    argv = list(spec.argv)
    if spec.port is None:
        stats_dir = workdir / f"{stem}.stats"
        stats_dir.mkdir(exist_ok=True)
        argv += ["--ready-file", str(ready_file), "--stats-dir", str(stats_dir)]
    try:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=0
        )
    except OSError as exc:
        log.close()
        raise ServerError(f"cannot start {spec.name}: {exc.strerror or exc}") from None
    try:
        yield _wait_started(
            spec,
            process,
            log_path=log_path,
            ready_file=ready_file,
            stats_dir=stats_dir,
            start_timeout=start_timeout,
        )
    finally:
        _stop_group(process)
        log.close()


def _wait_started(
    spec: ServerSpec,
    process: subprocess.Popen[bytes],
    *,
    log_path: Path,
    ready_file: Path,
    stats_dir: Path | None,
    start_timeout: float,
) -> RunningServer:
    try:
        if spec.port is None:
            info = wait_ready_file(ready_file, process, name=spec.name, timeout=start_timeout)
            return RunningServer(
                str(info.get("host", spec.host)),
                int(info["port"]),
                process,
                tuple(int(pid) for pid in info.get("pids") or [process.pid]),
                stats_dir,
            )
        _wait_port(spec.host, spec.port, process, spec, start_timeout)
        return RunningServer(spec.host, spec.port, process, (process.pid,), None, True)
    except ServerError as exc:
        with contextlib.suppress(OSError):
            tail = log_path.read_bytes()[-400:].decode(errors="replace").strip()
            if tail:
                raise ServerError(f"{exc}; its output ends: {tail[-300:]}") from None
        raise


def wait_ready_file(
    path: Path, process: subprocess.Popen[bytes], *, name: str, timeout: float
) -> dict[str, Any]:
    """The ready-file payload of a starting server (``connscale serve --ready-file``).

    ServerError if the process exits first or writes no valid payload within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{name} exited with code {process.returncode} at start")
        if path.exists():
            try:
                info = msgspec.json.decode(path.read_bytes())
            except msgspec.DecodeError:
                info = None  # written atomically, but be safe against a foreign writer
            if isinstance(info, dict) and "port" in info:
                return info
        time.sleep(0.05)
    raise ServerError(f"{name} wrote no ready file within {timeout:g} s")


def _wait_port(
    host: str, port: int, process: subprocess.Popen[bytes], spec: ServerSpec, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{spec.name} exited with code {process.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ServerError(f"{spec.name} did not accept on {host}:{port} within {timeout:g} s")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
            # The leader is gone; workers left in its group get the same signal.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


# --- measuring ----------------------------------------------------------------------------------


def _cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _median_int(values: Sequence[int | None]) -> int | None:
    known = [value for value in values if value is not None]
    return int(statistics.median(known)) if known else None


def _kernel_slab_bytes() -> tuple[int | None, int | None, int | None]:
    """(socket slab bytes, TCP buffer bytes, allocated TCP sockets), system-wide."""
    reading = kernel_sockets()
    slab = None
    if reading.slab:
        slab = sum(entry.active_bytes for entry in reading.slab.values())
    return slab, reading.tcp_mem_bytes, reading.tcp_alloc


class _Measurer:
    """Samples one server's memory: settling, plateaus and the timeline."""

    def __init__(self, target: RunningServer, config: BenchConfig, started: float) -> None:
        self.target = target
        self.config = config
        self.started = started
        self.timeline: list[TimePoint] = []
        self.last_timeline = 0.0

    def group(self) -> Any:
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
        return Plateau(
            connections=connections,
            uss=_median_int([r.uss for r in readings]),
            pss=_median_int([r.pss for r in readings]),
            rss=_median_int([r.rss for r in readings]),
            kernel_tcp_bytes=_median_int([k.tcp_mem_bytes for k in kernel]),
            kernel_tcp_sockets=_median_int([k.tcp_inuse for k in kernel]),
            samples=len(readings),
        )


def _traffic_struct(result: TrafficResult) -> Traffic:
    return Traffic(
        connections=result.connections,
        requests=result.requests,
        errors=result.errors,
        duration_s=round(result.duration_s, 3),
        throughput_rps=round(result.throughput_rps, 1),
        p50_ms=result.percentile_ms(50),
        p99_ms=result.percentile_ms(99),
        p999_ms=result.percentile_ms(99.9),
        max_ms=result.max_ms(),
    )


def _collect_gc(target: RunningServer, timeout: float = 3.0) -> GCStats | None:
    """Ask each worker for its stats (SIGUSR1) and sum their GC pauses."""
    if target.stats_dir is None:
        return None
    sent_at = time.time()
    pids = target.current_pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    found: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(found) < len(pids):
        for pid in pids:
            path = target.stats_dir / f"worker-{pid}.json"
            with contextlib.suppress(OSError, msgspec.DecodeError):
                if pid not in found and path.stat().st_mtime >= sent_at - 1.0:
                    data = msgspec.json.decode(path.read_bytes())
                    if isinstance(data, dict):
                        found[pid] = data
        time.sleep(0.05)
    workers = [data["gc"] for data in found.values() if isinstance(data.get("gc"), dict)]
    if not workers:
        return None
    pauses = sorted(float(p) for worker in workers for p in worker.get("pauses_ms") or [])

    def quantile(q: float) -> float | None:
        if not pauses:
            return None
        return pauses[min(len(pauses) - 1, int(q * len(pauses)))]

    maxima = [float(w["max_ms"]) for w in workers if w.get("max_ms") is not None]
    return GCStats(
        collections=sum(int(w.get("collections", 0)) for w in workers),
        total_pause_ms=round(sum(float(w.get("total_pause_ms", 0.0)) for w in workers), 3),
        p50_ms=quantile(0.5),
        p99_ms=quantile(0.99),
        max_ms=max(maxima) if maxima else (pauses[-1] if pauses else None),
        pauses_ms=pauses[-2000:],
    )


def measure_server(
    spec: ServerSpec,
    config: BenchConfig,
    workdir: Path,
    observer: BenchObserver | None = None,
) -> ServerResult:
    """Ramp one server through the plateaus up to its maximum, then run the traffic phases."""
    observer = observer or BenchObserver()
    result = ServerResult(name=spec.name, transport=spec.transport, workers=spec.workers)
    if spec.unavailable:
        result.error = f"not run: {spec.unavailable}"
        observer.server_done(spec, result)
        return result
    plateaus = [level for level in config.plateaus if level <= spec.max_connections]
    if not plateaus:
        result.error = "no plateau within this server's maximum connections"
        observer.server_done(spec, result)
        return result
    top = plateaus[-1]
    plan = plan_load(top, limits=read_limits(), target_host=spec.host)
    result.notes.append(f"load: {plan.describe()}")
    started = time.monotonic()
    try:
        with running_server(spec, workdir, start_timeout=config.start_timeout) as target:
            measurer = _Measurer(target, config, started)
            measurer.record(0)
            slab0, buffers0, sockets0 = _kernel_slab_bytes()
            observer.server_started(spec, plateaus)

            def on_progress(established: int, goal: int, failed: int) -> None:
                observer.ramp(spec, established, goal)
                measurer.record(established, every=0.5)

            runner = LoadRunner(
                plan,
                target.host,
                target.port,
                transport=spec.transport,
                max_seconds=config.max_seconds,
                on_progress=on_progress,
            )
            with runner:
                _ramp(
                    spec,
                    config,
                    runner,
                    target=target,
                    measurer=measurer,
                    plateaus=plateaus,
                    result=result,
                    observer=observer,
                )
                if result.plateaus:
                    slab1, buffers1, sockets1 = _kernel_slab_bytes()
                    result.kernel_bytes_per_socket = _per_socket(
                        (slab0, buffers0, sockets0), (slab1, buffers1, sockets1)
                    )
                    _traffic_phases(spec, config, runner, result, observer)
                result.gc = _collect_gc(target)
            result.timeline = measurer.timeline
    except (ServerError, LoadError, MeasurementError) as exc:
        result.error = str(exc)
    _fit(result)
    observer.server_done(spec, result)
    return result


def _ramp(
    spec: ServerSpec,
    config: BenchConfig,
    runner: LoadRunner,
    *,
    target: RunningServer,
    measurer: _Measurer,
    plateaus: Sequence[int],
    result: ServerResult,
    observer: BenchObserver,
) -> None:
    cpu_seconds = 0.0
    sessions = 0
    previous = 0
    for level in plateaus:
        observer.phase(spec, f"ramping to {level:,}")
        cpu_before = _cpu_seconds(target.current_pids())
        try:
            runner.grow_to(level, timeout=config.grow_timeout)
        except LoadError as exc:
            result.error = f"stopped before {level:,} connections: {exc}"
            break
        cpu_seconds += _cpu_seconds(target.current_pids()) - cpu_before
        sessions += level - previous
        previous = level
        observer.phase(spec, f"settling at {level:,}")
        if not measurer.settle(level):
            result.notes.append(f"memory still moving at {level} connections after settling")
        plateau = measurer.plateau(level)
        result.plateaus.append(plateau)
        result.max_connections = level
        observer.plateau(spec, plateau)
    if sessions:
        result.setup_cpu_us = round(cpu_seconds / sessions * 1e6, 2)


def _traffic_phases(
    spec: ServerSpec,
    config: BenchConfig,
    runner: LoadRunner,
    result: ServerResult,
    observer: BenchObserver,
) -> None:
    held = result.max_connections or 0
    try:
        observer.phase(spec, f"latency at {held:,} connections")
        rate = config.latency_rate / max(held, 1)
        latency = runner.traffic(duration=config.traffic_duration, rate=rate, mix=config.mix)
        result.latency = _traffic_struct(latency)
        result.notes.append(
            f"latency measured at {held:,} connections, open loop, "
            f"{config.latency_rate:g} req/s in all, mix {config.mix}"
        )
        level = min(config.throughput_connections, held)
        if level < held:
            runner.shrink_to(level)
        observer.phase(spec, f"throughput at {level:,} connections")
        throughput = runner.traffic(
            duration=config.traffic_duration,
            concurrency=config.traffic_concurrency,
            mix=config.mix,
        )
        result.traffic = _traffic_struct(throughput)
    except LoadError as exc:
        result.notes.append(f"traffic phase failed: {exc}")


def _per_socket(
    before: tuple[int | None, int | None, int | None],
    after: tuple[int | None, int | None, int | None],
) -> float | None:
    """Kernel bytes per TCP socket: socket slabs plus TCP buffers, as a difference."""
    slab0, buffers0, sockets0 = before
    slab1, buffers1, sockets1 = after
    if sockets0 is None or sockets1 is None or sockets1 <= sockets0:
        return None
    if slab0 is None or slab1 is None:
        return None
    delta = (slab1 - slab0) + ((buffers1 or 0) - (buffers0 or 0))
    return round(delta / (sockets1 - sockets0), 1)


def _fit(result: ServerResult) -> None:
    points = [
        (float(p.connections), float(p.uss if p.uss is not None else p.rss or 0))
        for p in result.plateaus
    ]
    if len(points) < 2:
        return
    fit = scaling(points)
    result.scaling = Scaling(
        fixed_overhead=round(fit.fixed_overhead, 1),
        marginal_bytes=round(fit.marginal_bytes, 2),
        r_squared=round(fit.r_squared, 6),
        step_marginals=[round(step, 2) for step in fit.step_marginals],
        step_cv=None if fit.step_cv is None else round(fit.step_cv, 4),
    )


# --- the whole run ----------------------------------------------------------------------------


def machine() -> Machine:
    """Describe this machine for RUN.json."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return Machine(
        hostname=platform.node(),
        cpus=os.cpu_count() or 1,
        memory_bytes=psutil.virtual_memory().total,
        python=platform.python_version(),
        platform=platform.platform(),
        open_files_limit=None if soft == resource.RLIM_INFINITY else int(soft),
    )


def run_bench(
    servers: Sequence[ServerSpec],
    config: BenchConfig,
    *,
    command: str,
    observer: BenchObserver | None = None,
    workdir: Path | None = None,
) -> Run:
    """Measure every server in turn, one at a time, and return the run record."""
    run = Run(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        command=command,
        machine=machine(),
    )
    run.notes.append(
        "memory: USS summed over the server's worker processes, median of "
        f"{config.samples} samples per plateau after the ramp settled; marginal bytes are "
        "the least-squares slope, never total/N"
    )
    run.notes.append(
        "load generator and servers share this machine's CPUs: timings are noisy, compare "
        "the ratios between servers of the same run"
    )
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="connscale-")))
        for spec in servers:
            run.servers.append(measure_server(spec, config, workdir, observer))
    return run


# --- judging against the targets -------------------------------------------------------------


def latency_at_max(result: ServerResult) -> Traffic | None:
    """The open-loop latency phase at the top plateau."""
    return result.latency


@dataclass(frozen=True)
class TargetCheck:
    """One target of the benchmark and whether this run met it."""

    name: str
    met: bool | None  # None: not measured in this run
    detail: str


def check_targets(run: Run, *, reference_prefix: str = "connscale") -> list[TargetCheck]:
    """Judge the run against the issue's targets (CV, p99 at max, throughput ratio)."""
    checks: list[TargetCheck] = []
    reference = next((s for s in run.servers if s.name.startswith(reference_prefix)), None)
    by_name = {server.name: server for server in run.servers}
    if reference is None or (reference.error and not reference.plateaus):
        reason = reference.error if reference else "no reference server in this run"
        return [TargetCheck("reference server measured", None, reason or "")]
    cv = reference.scaling.step_cv if reference.scaling else None
    top = reference.max_connections or 0
    checks.append(
        TargetCheck(
            f"per-step marginal CV < {TARGET_STEP_CV} (up to {top:,} connections)",
            None if cv is None else cv < TARGET_STEP_CV,
            "not measured" if cv is None else f"CV = {cv:.4f}",
        )
    )
    latency = latency_at_max(reference)
    p99 = latency.p99_ms if latency else None
    checks.append(
        TargetCheck(
            f"ping p99 < {TARGET_P99_MS:g} ms with {top:,} connected",
            None if p99 is None else p99 < TARGET_P99_MS,
            "not measured" if p99 is None else f"p99 = {p99:.2f} ms",
        )
    )
    ours = reference.traffic.throughput_rps if reference.traffic else None
    for baseline in ("asyncio-protocol", "uvloop-protocol"):
        other = by_name.get(baseline)
        theirs = other.traffic.throughput_rps if other and other.traffic else None
        if ours is None or not theirs:
            checks.append(TargetCheck(f"throughput vs {baseline}", None, "not measured"))
            continue
        ratio = ours / theirs
        level = reference.traffic.connections if reference.traffic else 0
        checks.append(
            TargetCheck(
                f"ping throughput at {level:,} connections vs {baseline}",
                ratio >= 1.0 if baseline == "asyncio-protocol" else None,
                f"{ours:,.0f} vs {theirs:,.0f} req/s: ratio {ratio:.2f}",
            )
        )
    return checks


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f} MB"


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def summary_markdown(run: Run) -> str:
    """A short Markdown summary: one row per server, then the targets."""
    lines = [
        "# connscale bench",
        "",
        f"`{run.command}` on {run.machine.cpus} CPUs, "
        f"{run.machine.memory_bytes / 2**30:.0f} GiB, Python {run.machine.python}, "
        f"{run.created}",
        "",
        "| server | workers | max conns | fixed | marginal B/conn | step CV | kernel B/socket "
        "| setup CPU us | ping rps | p50 ms | p99 ms | p99.9 ms | p99 ms at max | GC pause total "
        "ms | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for server in run.servers:
        fit = server.scaling
        traffic = server.traffic
        latency = latency_at_max(server)
        cells = [
            server.name,
            str(server.workers),
            _num(server.max_connections),
            _mb(fit.fixed_overhead if fit else None),
            _num(fit.marginal_bytes if fit else None),
            _num(fit.step_cv if fit else None, "{:.4f}"),
            _num(server.kernel_bytes_per_socket),
            _num(server.setup_cpu_us, "{:.1f}"),
            _num(traffic.throughput_rps if traffic else None),
            _num(traffic.p50_ms if traffic else None, "{:.2f}"),
            _num(traffic.p99_ms if traffic else None, "{:.2f}"),
            _num(traffic.p999_ms if traffic else None, "{:.2f}"),
            _num(latency.p99_ms if latency else None, "{:.2f}"),
            _num(server.gc.total_pause_ms if server.gc else None, "{:.1f}"),
            (server.error or "").replace("|", "/")[:120],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Targets", ""]
    for check in check_targets(run):
        mark = {True: "met", False: "MISSED", None: "n/a"}[check.met]
        lines.append(f"- {check.name}: **{mark}** ({check.detail})")
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in run.notes]
    for server in run.servers:
        lines += [f"- {server.name}: {note}" for note in server.notes]
    return "\n".join(lines) + "\n"


def write_outputs(run: Run, out_dir: Path) -> list[Path]:
    """Write RUN.json, SUMMARY.md and (when the report renderer is built) report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    run_path = out_dir / "RUN.json"
    write_run(run, run_path)
    written.append(run_path)
    summary = out_dir / "SUMMARY.md"
    summary.write_text(summary_markdown(run), encoding="utf-8")
    written.append(summary)
    render: Callable[..., Path] | None
    try:
        from connscale.report import write_report as render
    except ImportError:
        render = None
    if render is not None:
        written.append(render(run, "html", out_dir / "report.html"))
        written.append(render(run, "markdown", out_dir / "report.md"))
    return written


__all__ = [
    "BASELINE_MAX_CONNECTIONS",
    "CONNECTIONS_PER_WORKER",
    "DEFAULT_MAX_CONNECTIONS",
    "QUICK_PLATEAUS",
    "BenchConfig",
    "BenchObserver",
    "RunningServer",
    "ServerSpec",
    "TargetCheck",
    "check_targets",
    "custom_server",
    "default_plateaus",
    "default_servers",
    "latency_at_max",
    "machine",
    "measure_server",
    "run_bench",
    "running_server",
    "summary_markdown",
    "wait_ready_file",
    "write_outputs",
]
