"""``connscale watch --pid PID``: a live view of a server's memory, bytes per connection,
growth trend and GC pauses (or a Prometheus export)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from connscale.core.stats import Plateau, ScalingResult, TrendResult
    from connscale.gc import GCStatistics
    from connscale.memory import KernelSockets, MemorySample, ProcessSockets
    from connscale.monitor import Monitor

HELP = "live view of a server's memory, bytes per connection, trend and GC pauses"
DESCRIPTION = """\
Watch a running server: RSS, anonymous memory, swap and open fds every tick; USS and
PSS (exact, every few ticks) summed over the process and its children (a server's
workers: the PSS sum is the total with shared pages counted once); the sockets it holds
and the kernel memory they account for; bytes per connection, the bench's fit: exact
readings grouped into settled plateaus of its socket count (a ramp in steps, such as
examples/locustfile.py's), the median of each, the least-squares slope over them, for
USS and for PSS, with the CV of the per-step marginals; the growth trend with its
confidence interval; kernel TCP memory (system-wide, labelled so); GC pauses (only for
this process itself: another process's collector cannot be seen from outside). Sampling
is adaptive: it slows down while memory is stable. --plain marks a figure that was read
on an earlier tick with its age.

  connscale watch --pid 1234
  connscale watch --pid 1234 --prometheus-port 9464 --duration 3600
  connscale watch --pid 1234 --interval 1 --max-interval 1 --exact-every 1 --out fit.json

At the end (--duration or Ctrl-C) the plateaus and the fit are printed, and written as
JSON to --out.

Prometheus metrics carry a pid label; a figure that cannot be read is absent, not 0.
Ctrl-C or SIGTERM ends the watch with the report. A pid that does not exist is an error
(exit 2).
"""

#: Full readings kept for the bytes-per-connection fit (a bounded window).
FIT_WINDOW = 720
#: Exact readings a plateau needs (after the first, dropped while the server settles).
PLATEAU_READINGS = 3


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
        help="also serve Prometheus metrics on port N (/metrics)",
    )
    parser.add_argument(
        "--prometheus-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the metrics listen on (127.0.0.1; 0.0.0.0 for a remote Prometheus)",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument(
        "--plain", action="store_true", help="one line per sample instead of a live table"
    )
    parser.add_argument(
        "--exact-every",
        type=int,
        default=12,
        metavar="N",
        help="take the exact reading (USS, PSS, sockets) every N ticks (12); 1 for a "
        "plateau fit over a ramp of short steps",
    )
    parser.add_argument(
        "--out", metavar="PATH", help="at the end, write the plateaus and the fit here (JSON)"
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


Reading = tuple[float, float | None, float | None]  # (sockets, uss, pss)


@dataclass
class Exact:
    """What the exact (full) readings add: process count, sockets, the per-connection fit."""

    processes: int = 1
    sockets: ProcessSockets | None = None
    full_tick: int = -1  # the tick of the newest full reading
    readings: deque[Reading] = field(default_factory=lambda: deque(maxlen=FIT_WINDOW))

    def age(self, monitor: Monitor) -> int | None:
        """Ticks since the newest full reading (0: this one), None before the first."""
        return None if self.full_tick < 0 else monitor.ticks - 1 - self.full_tick

    def plateaus(self) -> list[Plateau]:
        """The settled plateaus of the socket count in the window (the bench's points)."""
        from connscale.core.stats import plateaus

        return plateaus(list(self.readings), min_readings=PLATEAU_READINGS)

    def fit(self, name: str = "uss") -> ScalingResult | None:
        """The least-squares line of ``name`` over the plateau medians of the longest rising
        run of plateaus (not a ramp down's); None before two."""
        from connscale.core.stats import rising, scaling
        from connscale.errors import ConfigurationError

        points = [
            (plateau.connections, float(value))
            for plateau in rising(self.plateaus())
            if (value := getattr(plateau, name)) is not None
        ]
        if len({x for x, _ in points}) < 2:
            return None
        try:
            return scaling(points)
        except ConfigurationError:
            return None

    def bytes_per_connection(self) -> float | None:
        """The marginal USS per connection over the plateaus; None before two plateaus."""
        fit = self.fit("uss")
        return None if fit is None else fit.marginal_bytes

    def result(self) -> dict[str, object]:
        """The plateaus and the USS and PSS fits, as --out writes them."""
        fits: dict[str, object] = {}
        for name in ("uss", "pss"):
            fit = self.fit(name)
            fits[name] = None
            if fit is not None:
                fits[name] = {
                    "marginal_bytes": round(fit.marginal_bytes, 2),
                    "fixed_overhead": round(fit.fixed_overhead, 1),
                    "r_squared": round(fit.r_squared, 6),
                    "step_marginals": [round(step, 2) for step in fit.step_marginals],
                    "step_cv": None if fit.step_cv is None else round(fit.step_cv, 4),
                }
        return {
            "processes": self.processes,
            "plateaus": [
                {
                    "sockets": p.connections,
                    "uss": p.uss,
                    "pss": p.pss,
                    "readings": p.readings,
                }
                for p in self.plateaus()
            ],
            "fit": fits,
        }


def connection_text(exact: Exact | None) -> str:
    if exact is None:
        return "n/a"
    uss, pss = exact.fit("uss"), exact.fit("pss")
    if uss is None:
        return (
            f"n/a until two settled plateaus of the socket count "
            f"({PLATEAU_READINGS + 1} exact readings each)"
        )
    cv = "n/a" if uss.step_cv is None else f"{uss.step_cv:.3f}"
    pss_text = "" if pss is None else f", PSS {pss.marginal_bytes:,.0f} B"
    return (
        f"USS {uss.marginal_bytes:,.0f} B{pss_text} (over {len(uss.points)} plateaus, step CV {cv})"
    )


def final_report(exact: Exact) -> str:
    """What a watch ends with: each plateau, then the fit (the bench's figure)."""
    lines = ["plateaus (sockets: USS, PSS, readings):"]
    for plateau in exact.plateaus():
        lines.append(
            f"  {plateau.connections:,.0f}: {_size(plateau.uss)}, {_size(plateau.pss)}, "
            f"{plateau.readings}"
        )
    if len(lines) == 1:
        lines.append("  none settled")
    lines.append(f"bytes per connection: {connection_text(exact)}")
    return "\n".join(lines)


def build_view(
    monitor: Monitor,
    *,
    trend: TrendResult | None,
    gc: GCStatistics | None,
    kernel: KernelSockets | None,
    exact: Exact | None = None,
) -> Table:
    """The live table (a pure function of the monitor's state, so it is tested directly)."""
    from rich.table import Table

    last, full = monitor.last, monitor.last_full
    table = Table(title=f"connscale watch: pid {last.pid if last else '?'}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    processes = exact.processes if exact else 1
    summed = f", sum of {processes} processes" if processes > 1 else ""
    if last is not None:
        table.add_row("RSS", _size(last.rss))
        table.add_row("anonymous", _size(last.anon))
        table.add_row(f"USS (exact, last full read{summed})", _size(full.uss if full else None))
        table.add_row(f"PSS total (exact{summed})", _size(full.pss if full else None))
        table.add_row("swap", _size(last.swap))
        table.add_row("open fds", "n/a" if last.fds is None else f"{last.fds:,}")
    sockets = exact.sockets if exact else None
    if sockets is not None:
        kernel_part = (
            f", kernel {_size(sockets.kernel_bytes)} ({_size(sockets.bytes_per_socket)}/socket)"
            if sockets.kernel_bytes is not None
            else f", kernel n/a ({sockets.reason})"
        )
        table.add_row("sockets held", f"{sockets.sockets:,}{kernel_part}")
    table.add_row("bytes per connection", connection_text(exact))
    table.add_row("trend (anonymous)", trend_text(trend))
    table.add_row("samples / next in", f"{monitor.ticks} / {monitor.interval:.1f} s")
    if kernel is not None and kernel.available:
        table.add_row("kernel TCP sockets (SYSTEM-WIDE)", f"{kernel.tcp_inuse:,}")
        table.add_row("kernel TCP memory (SYSTEM-WIDE)", _size(kernel.tcp_mem_bytes))
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


def plain_line(monitor: Monitor, trend: TrendResult | None, exact: Exact | None = None) -> str:
    last = monitor.last
    if last is None:
        return "no sample yet"
    full = monitor.last_full
    age = exact.age(monitor) if exact is not None else None
    stale = f" ({age} ticks old)" if age else ""
    uss = _size(full.uss if full else None)
    pss = _size(full.pss if full else None)
    sockets = exact.sockets.sockets if exact and exact.sockets else None
    return (
        f"pid {last.pid} rss {_size(last.rss)} anon {_size(last.anon)} "
        f"uss {uss}{stale} pss {pss}{stale} "
        f"fds {last.fds if last.fds is not None else 'n/a'} "
        f"sockets {sockets if sockets is not None else 'n/a'} "
        f"per-conn {connection_text(exact)} trend {trend_text(trend)} "
        f"next {monitor.interval:.1f}s"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def group_reader(pid: int, exact: Exact, clock: Callable[[], float]) -> Callable[[], MemorySample]:
    """A full reading of ``pid`` and its descendants (a server's workers), summed."""
    from connscale.memory import sample_tree

    def read() -> MemorySample:
        sample, exact.processes = sample_tree(pid, clock=clock)
        return sample

    return read


def run(
    args: argparse.Namespace,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    from rich.console import Console
    from rich.live import Live

    from connscale.core.monitor_policy import AdaptiveSampling
    from connscale.errors import ConfigurationError, MeasurementError, ProcessGoneError
    from connscale.gc import PauseRecorder
    from connscale.memory import MemoryReader, descendants, kernel_sockets, process_sockets
    from connscale.monitor import Monitor
    from connscale.prometheus import MetricsExporter, MetricsServer

    if args.pid <= 0:
        raise ConfigurationError(f"--pid must be a positive process id, got {args.pid}")
    if args.duration is not None and args.duration <= 0:
        raise ConfigurationError(f"--duration must be > 0 seconds, got {args.duration}")
    if args.exact_every < 1:
        raise ConfigurationError(f"--exact-every must be at least 1, got {args.exact_every}")
    reader = MemoryReader(args.pid, clock=clock)
    reader.sample_quick()  # a pid that does not exist fails here, before any display
    policy = AdaptiveSampling(
        base_interval=args.interval, max_interval=max(args.max_interval, args.interval)
    )
    exact = Exact()
    monitor = Monitor(
        sampler=reader.sample_quick,
        full_sampler=group_reader(args.pid, exact, clock),
        full_every=args.exact_every,
        policy=policy,
    )
    recorder = PauseRecorder() if args.pid == os.getpid() else None
    exporter: MetricsExporter | None = None
    server: MetricsServer | None = None
    if args.prometheus_port is not None:
        exporter = MetricsExporter(pid=args.pid)
        server = exporter.serve(args.prometheus_port, addr=args.prometheus_host)
        monitor.add_listener(exporter.observe_sample)
        if recorder is not None:
            exporter.attach(recorder)
        print(f"serving metrics on {args.prometheus_host}:{server.port}/metrics", file=sys.stderr)
    console = Console()
    live_view = console.is_terminal and not args.plain
    deadline = None if args.duration is None else clock() + args.duration
    started = clock()
    if recorder is not None:
        recorder.start()

    def trend_field() -> str:
        return "anon" if monitor.last and monitor.last.anon else "rss"

    def trend_now() -> TrendResult | None:
        try:
            return monitor.trend(trend_field())
        except ConfigurationError:
            return None  # fewer than 2 samples so far

    def after_full() -> None:
        """Count the sockets at each exact reading: the x of the per-connection fit."""
        exact.full_tick = monitor.ticks - 1
        full = monitor.last_full
        try:
            exact.sockets = process_sockets([args.pid, *descendants(args.pid)])
        except MeasurementError:
            exact.sockets = None
            return
        if full is not None and (full.uss is not None or full.pss is not None):
            exact.readings.append(
                (
                    float(exact.sockets.sockets),
                    None if full.uss is None else float(full.uss),
                    None if full.pss is None else float(full.pss),
                )
            )
        if exporter is not None:
            exporter.observe_sockets(exact.sockets, pid=args.pid)
            value = exact.bytes_per_connection()
            if value is not None:
                exporter.set_bytes_per_connection(value)

    live: Live | None = None
    stack = contextlib.ExitStack()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a service manager, a script) ends the watch as Ctrl-C does: with the
        # final report and --out written.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        stack.callback(signal.signal, signal.SIGTERM, previous)
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
            if monitor.last is monitor.last_full:
                after_full()
            trend = trend_now()
            kernel = kernel_sockets()
            if exporter is not None:
                exporter.observe_kernel(kernel)
                if trend is not None:
                    exporter.observe_trend(trend, kind=trend_field())
            gc_stats = recorder.statistics() if recorder is not None else None
            if live is not None:
                view = build_view(monitor, trend=trend, gc=gc_stats, kernel=kernel, exact=exact)
                live.update(view, refresh=True)
            else:
                print(plain_line(monitor, trend, exact), flush=True)
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
        stack.close()
    print(final_report(exact), flush=True)
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as file:
                json.dump({"pid": args.pid, **exact.result()}, file, indent=2)
                file.write("\n")
        except OSError as exc:
            raise ConfigurationError(f"cannot write {args.out}: {exc.strerror}") from None
    return 0
