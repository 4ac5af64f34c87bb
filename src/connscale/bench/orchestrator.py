"""Run the connection benchmark: servers side by side, ramped through the same plateaus.

For each server (the reference server, baselines, a user's own in any protocol): start it
(``lifecycle``), ramp real connections through plateaus with the load generator, measure
each settled plateau (``measure``), then the traffic phases (``phases``). A run is honest
or it fails: connections dropped during a plateau stop that server with the count and the
first reason, and a partial server publishes no marginal; a Ctrl-C returns the run so far,
marked incomplete, so that RUN.json keeps what was measured.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

from connscale.bench.config import (
    BASELINE_MAX_CONNECTIONS,
    CONNECTIONS_PER_WORKER,
    DEFAULT_MAX_CONNECTIONS,
    QUICK_PLATEAUS,
    BenchConfig,
    default_plateaus,
    plateaus_for,
)
from connscale.bench.lifecycle import (
    RunningServer,
    check_port_free,
    running_server,
    wait_ready_file,
)
from connscale.bench.measure import Measurer, collect_gc, cpu_seconds, fit
from connscale.bench.observer import BenchObserver
from connscale.bench.phases import run_traffic_phases
from connscale.bench.targets import (
    ServerSpec,
    custom_server,
    default_servers,
    parse_target,
)
from connscale.errors import ConfigurationError, LoadError, MeasurementError, ServerError
from connscale.loadgen.plan import plan_load, read_limits
from connscale.loadgen.runner import LoadRunner
from connscale.report.schema import Machine, Run, ServerResult, write_run
from connscale.report.summary import (
    TARGET_P99_MS,
    TARGET_STEP_CV,
    TargetCheck,
    check_targets,
    latency_at_max,
    summary_markdown,
)


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a server's measurement; carries that server's result so far."""

    def __init__(self, result: ServerResult) -> None:
        super().__init__(result.name)
        self.result = result


def _stop(result: ServerResult, error: str) -> None:
    result.error = error
    result.complete = False


def measure_server(
    spec: ServerSpec,
    config: BenchConfig,
    workdir: Path,
    observer: BenchObserver | None = None,
) -> ServerResult:
    """Ramp one server through the plateaus up to its maximum, then run the traffic phases.

    Raises BenchInterrupted on Ctrl-C (with the plateaus measured so far).
    """
    observer = observer or BenchObserver()
    result = ServerResult(
        name=spec.name, transport=spec.transport, protocol=spec.protocol, workers=spec.workers
    )
    if spec.unavailable:
        _stop(result, f"not run: {spec.unavailable}")
        observer.server_done(spec, result)
        return result
    plateaus = list(plateaus_for(config.plateaus, spec.max_connections, scale=spec.scale_plateaus))
    if not set(plateaus) <= set(config.plateaus):
        result.notes.append(
            f"plateaus {', '.join(f'{p:,}' for p in plateaus)}: the run's ladder scaled down to "
            f"this server's cap of {spec.max_connections:,} connections"
        )
    if not plateaus:
        _stop(result, "no plateau within this server's maximum connections")
        observer.server_done(spec, result)
        return result
    plan = plan_load(plateaus[-1], limits=read_limits(), target_host=spec.host)
    result.notes.append(f"load: {plan.describe()}, protocol {spec.protocol}")
    started = time.monotonic()
    measurer: Measurer | None = None
    try:
        with running_server(spec, workdir, start_timeout=config.start_timeout) as target:
            runner = LoadRunner(
                plan,
                target.host,
                target.port,
                protocol=spec.protocol,
                path=spec.path,
                probe=spec.probe,
                call=spec.call,
                max_seconds=config.max_seconds,
            )
            measurer = Measurer(target, config, started, loadgen_pids=lambda: runner.pids)
            measurer.record(0)
            observer.server_started(spec, plateaus)
            observer.target_started(spec, target)

            def on_progress(established: int, goal: int, failed: int) -> None:
                observer.ramp(spec, established, goal)
                assert measurer is not None
                measurer.record(established, every=0.5)

            runner.on_progress = on_progress
            with runner:
                _ramp(spec, config, runner, target, measurer, plateaus, result, observer)
                if result.complete:
                    run_traffic_phases(spec, config, runner, result, observer)
                result.gc = collect_gc(target)
    except (ServerError, LoadError, MeasurementError) as exc:
        _stop(result, str(exc))
    except KeyboardInterrupt:
        _stop(result, "interrupted (Ctrl-C): the plateaus measured so far are kept")
        _finish(result, measurer)
        raise BenchInterrupted(result) from None
    _finish(result, measurer)
    observer.server_done(spec, result)
    return result


def _finish(result: ServerResult, measurer: Measurer | None) -> None:
    if measurer is not None:
        result.timeline = measurer.timeline
    fit(result)
    if not result.complete and result.plateaus:
        result.notes.append(
            f"partial run ({len(result.plateaus)} plateau(s) before it stopped): "
            "no marginal is published from it"
        )


def _ramp(  # noqa: PLR0917 (one private step of measure_server, called once)
    spec: ServerSpec,
    config: BenchConfig,
    runner: LoadRunner,
    target: RunningServer,
    measurer: Measurer,
    plateaus: Sequence[int],
    result: ServerResult,
    observer: BenchObserver,
) -> None:
    cpu = 0.0
    sessions = 0
    previous = 0
    for level in plateaus:
        observer.phase(spec, f"ramping to {level:,}")
        cpu_before = cpu_seconds(target.current_pids())
        try:
            grown = runner.grow_to(level, timeout=config.grow_timeout)
        except LoadError as exc:
            _stop(result, f"stopped before {level:,} connections: {exc}")
            return
        if grown.dropped:
            _stop(result, _dropped(grown.dropped, level, grown.first_drop, "while ramping"))
            return
        cpu += cpu_seconds(target.current_pids()) - cpu_before
        sessions += level - previous
        previous = level
        observer.phase(spec, f"settling at {level:,}")
        if not measurer.settle(level):
            result.notes.append(f"memory still moving at {level} connections after settling")
        plateau = measurer.plateau(level)
        status = runner.status()
        if status.dropped:
            # The plateau was sampled while connections went away: it is not kept.
            _stop(result, _dropped(status.dropped, level, status.first_drop, "during the plateau"))
            return
        result.plateaus.append(plateau)
        result.max_connections = level
        observer.plateau(spec, plateau)
    if sessions:
        result.setup_cpu_us = round(cpu / sessions * 1e6, 2)


def _dropped(count: int, level: int, first: str | None, when: str) -> str:
    return (
        f"the server dropped {count:,} of {level:,} held connections {when} at "
        f"{level:,} (first: {first or 'no reason recorded'}); an idle timeout on the server?"
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


def check_servers(servers: Sequence[ServerSpec]) -> None:
    """Refuse, before anything starts, a run that cannot be honest: a name given twice, or a
    user's server port that another process already holds."""
    if not servers:
        raise ConfigurationError("nothing to measure: name a --target or --servers")
    twice = [name for name, count in Counter(s.name for s in servers).items() if count > 1]
    if twice:
        raise ConfigurationError(f"server name(s) {twice} given twice; give each its own name")
    for spec in servers:
        check_port_free(spec)


def run_bench(
    servers: Sequence[ServerSpec],
    config: BenchConfig,
    *,
    command: str,
    observer: BenchObserver | None = None,
    workdir: Path | None = None,
) -> Run:
    """Measure every server in turn, one at a time, and return the run record.

    On Ctrl-C the run so far comes back with ``incomplete`` set (and the interrupted
    server's plateaus kept); the caller writes it and exits.
    """
    check_servers(servers)
    run = Run(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        command=command,
        machine=machine(),
    )
    run.notes.append(
        "memory: USS summed over the server's processes, median of "
        f"{config.samples} samples per plateau after the ramp settled; marginal bytes are "
        "the least-squares slope, never total/N; PSS summed is the total with shared pages"
    )
    run.notes.append(
        "kernel: 'kernel B/socket' counts the server's own sockets; the plateaus' "
        "kernel_tcp_bytes and kernel_tcp_sockets are system-wide (every process on the machine)"
    )
    run.notes.append(
        "load generator and servers share this machine's CPUs: timings are noisy, compare "
        "the ratios between servers of the same run"
    )
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="connscale-")))
        for spec in servers:
            try:
                run.servers.append(measure_server(spec, config, workdir, observer))
            except BenchInterrupted as stop:
                run.servers.append(stop.result)
                run.incomplete = True
                run.notes.append(f"interrupted (Ctrl-C) while measuring {spec.name}")
                break
    return run


def failures(run: Run) -> list[ServerResult]:
    """Servers that ran and failed (a server not run for a missing library is not one)."""
    return [s for s in run.servers if s.error and not s.error.startswith("not run:")]


def write_outputs(run: Run, out_dir: Path) -> list[Path]:
    """Write RUN.json, SUMMARY.md, report.html and report.md (one table, one chart)."""
    from connscale.report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    run_path = out_dir / "RUN.json"
    write_run(run, run_path)
    summary = out_dir / "SUMMARY.md"
    summary.write_text(summary_markdown(run), encoding="utf-8")
    written = [run_path, summary]
    written.append(write_report(run, "html", out_dir / "report.html"))
    written.append(write_report(run, "markdown", out_dir / "report.md"))
    return written


__all__ = [
    "BASELINE_MAX_CONNECTIONS",
    "CONNECTIONS_PER_WORKER",
    "DEFAULT_MAX_CONNECTIONS",
    "QUICK_PLATEAUS",
    "TARGET_P99_MS",
    "TARGET_STEP_CV",
    "BenchConfig",
    "BenchInterrupted",
    "BenchObserver",
    "RunningServer",
    "ServerSpec",
    "TargetCheck",
    "check_servers",
    "check_targets",
    "custom_server",
    "default_plateaus",
    "default_servers",
    "failures",
    "latency_at_max",
    "machine",
    "measure_server",
    "parse_target",
    "run_bench",
    "running_server",
    "summary_markdown",
    "wait_ready_file",
    "write_outputs",
]
