"""``connscale watch --pid PID``: a live view of a process's memory, trend and GC pauses."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from connscale.core.stats import TrendResult
    from connscale.gc import GCStatistics
    from connscale.memory import KernelSockets
    from connscale.monitor import Monitor

HELP = "live view of a process's memory, growth trend and GC pauses (or Prometheus export)"
DESCRIPTION = """\
Watch a running process: USS/PSS (exact, every few ticks), RSS, anonymous memory, swap,
open fds, the growth trend with its confidence interval, kernel TCP memory, and GC pauses
(only for this process itself: another process's collector cannot be seen from outside).
Sampling is adaptive: it slows down while memory is stable.

  connscale watch --pid 1234
  connscale watch --pid 1234 --prometheus-port 9464 --duration 3600

Ctrl-C exits cleanly. A pid that does not exist is an error (exit 2).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pid", type=int, required=True, help="process to watch")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="base sampling interval in seconds (5)"
    )
    parser.add_argument(
        "--max-interval", type=float, default=60.0, help="longest interval when stable (60)"
    )
    parser.add_argument(
        "--prometheus-port",
        type=int,
        metavar="N",
        help="also serve Prometheus metrics on 127.0.0.1:N/metrics",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument(
        "--plain", action="store_true", help="one line per sample instead of a live table"
    )


def _size(value: float | None) -> str:
    if value is None:
        return "n/a"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"


def trend_text(result: TrendResult | None) -> str:
    if result is None:
        return "collecting samples..."
    per_hour = result.slope * 3600
    verdict = "LEAK?" if result.leak else "ok"
    low, high = result.slope_low * 3600, result.slope_high * 3600
    return f"{_size(per_hour)}/h [{_size(low)}, {_size(high)}] {verdict}"


def build_view(
    monitor: Monitor,
    *,
    trend: TrendResult | None,
    gc: GCStatistics | None,
    kernel: KernelSockets | None,
) -> Table:
    """The live table (a pure function of the monitor's state, so it is tested directly)."""
    from rich.table import Table

    last, full = monitor.last, monitor.last_full
    table = Table(title=f"connscale watch: pid {last.pid if last else '?'}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    if last is not None:
        table.add_row("RSS", _size(last.rss))
        table.add_row("anonymous", _size(last.anon))
        table.add_row("USS (exact, last full read)", _size(full.uss if full else None))
        table.add_row("PSS (exact, last full read)", _size(full.pss if full else None))
        table.add_row("swap", _size(last.swap))
        table.add_row("open fds", "n/a" if last.fds is None else f"{last.fds:,}")
    table.add_row("trend (anonymous)", trend_text(trend))
    table.add_row("samples / next in", f"{monitor.ticks} / {monitor.interval:.1f} s")
    if kernel is not None and kernel.available:
        table.add_row("kernel TCP sockets (system)", f"{kernel.tcp_inuse:,}")
        table.add_row("kernel TCP memory (system)", _size(kernel.tcp_mem_bytes))
    else:
        reason = kernel.reason if kernel is not None else "not read"
        table.add_row("kernel TCP memory", f"n/a ({reason})")
    if gc is None:
        table.add_row("GC pauses", "n/a (visible only inside the process itself)")
    else:
        table.add_row(
            "GC pauses",
            f"{gc.collections:,} collections, p99 "
            f"{'n/a' if gc.p99_pause_s is None else f'{gc.p99_pause_s * 1e3:.2f} ms'}, max "
            f"{'n/a' if gc.max_pause_s is None else f'{gc.max_pause_s * 1e3:.2f} ms'}",
        )
    return table


def plain_line(monitor: Monitor, trend: TrendResult | None) -> str:
    last = monitor.last
    if last is None:
        return "no sample yet"
    return (
        f"pid {last.pid} rss {_size(last.rss)} anon {_size(last.anon)} "
        f"uss {_size(monitor.last_full.uss if monitor.last_full else None)} "
        f"fds {last.fds if last.fds is not None else 'n/a'} trend {trend_text(trend)} "
        f"next {monitor.interval:.1f}s"
    )


def run(
    args: argparse.Namespace,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    from rich.console import Console
    from rich.live import Live

    from connscale.core.monitor_policy import AdaptiveSampling
    from connscale.errors import ConfigurationError, ProcessGoneError
    from connscale.gc import PauseRecorder
    from connscale.memory import MemoryReader, kernel_sockets
    from connscale.monitor import Monitor
    from connscale.prometheus import MetricsExporter, MetricsServer

    if args.pid <= 0:
        raise ConfigurationError(f"--pid must be a positive process id, got {args.pid}")
    if args.duration is not None and args.duration <= 0:
        raise ConfigurationError(f"--duration must be > 0 seconds, got {args.duration}")
    reader = MemoryReader(args.pid, clock=clock)
    reader.sample_quick()  # a pid that does not exist fails here, before any display
    policy = AdaptiveSampling(
        base_interval=args.interval, max_interval=max(args.max_interval, args.interval)
    )
    monitor = Monitor(sampler=reader.sample_quick, full_sampler=reader.sample, policy=policy)
    recorder = PauseRecorder() if args.pid == os.getpid() else None
    exporter: MetricsExporter | None = None
    server: MetricsServer | None = None
    if args.prometheus_port is not None:
        exporter = MetricsExporter()
        server = exporter.serve(args.prometheus_port)
        monitor.add_listener(exporter.observe_sample)
        if recorder is not None:
            exporter.attach(recorder)
        print(f"serving metrics on 127.0.0.1:{server.port}/metrics", file=sys.stderr)
    console = Console()
    live_view = console.is_terminal and not args.plain
    deadline = None if args.duration is None else clock() + args.duration
    started = clock()
    if recorder is not None:
        recorder.start()

    def trend_now() -> TrendResult | None:
        try:
            return monitor.trend("anon" if monitor.last and monitor.last.anon else "rss")
        except ConfigurationError:
            return None  # fewer than 2 samples so far

    live: Live | None = None
    try:
        if live_view:
            live = Live(console=console, auto_refresh=False)
            live.start()
        while True:
            try:
                interval = monitor.tick()
            except ProcessGoneError:
                raise ProcessGoneError(
                    f"process {args.pid} exited after {clock() - started:.0f} s of watching"
                ) from None
            trend = trend_now()
            kernel = kernel_sockets()
            if exporter is not None:
                exporter.observe_kernel(kernel)
            gc_stats = recorder.statistics() if recorder is not None else None
            if live is not None:
                view = build_view(monitor, trend=trend, gc=gc_stats, kernel=kernel)
                live.update(view, refresh=True)
            else:
                print(plain_line(monitor, trend), flush=True)
            if deadline is not None:
                remaining = deadline - clock()
                if remaining <= 0:
                    break
                interval = min(interval, remaining)
            sleep(interval)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        if live is not None:
            live.stop()
        if recorder is not None:
            recorder.stop()
        if server is not None:
            server.close()
    return 0
