"""``connscale bench``: the reference server and baselines side by side, real sockets."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connscale.bench.orchestrator import ServerSpec
    from connscale.report.schema import Plateau, ServerResult

HELP = "measure memory per connection, throughput and latency against baselines"
DESCRIPTION = """\
Start the reference server (`connscale serve`) and baseline servers written the usual
ways (asyncio streams, asyncio Protocol, uvloop Protocol; the official MCP SDK for HTTP),
ramp real loopback connections through the same plateaus, sample each server's memory
after the ramp settles, fit fixed overhead and marginal bytes per connection, then
measure latency and throughput. Writes RUN.json, SUMMARY.md and report.html to --out.

The default run ends within about ten minutes on a 2-core machine and takes the
reference server to 100,000 connections (baselines to 15,000: one process each).
--quick is a CI-sized smoke run (under a minute). --target-cmd measures your own server.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a small smoke run (< 1 minute)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder")
    parser.add_argument(
        "--servers",
        nargs="+",
        metavar="NAME",
        help="servers to run (connscale, asyncio-streams, asyncio-protocol, uvloop-protocol, "
        "mcp-sdk); default: all for the transport",
    )
    parser.add_argument("--transport", choices=("tcp", "http"), default="tcp")
    parser.add_argument(
        "--max-connections",
        "--connections",
        dest="max_connections",
        type=int,
        help="top plateau of the reference server (default 100000; 1000000 on a large box)",
    )
    parser.add_argument(
        "--plateaus", help="comma-separated connection levels (overrides the default ladder)"
    )
    parser.add_argument("--target-cmd", help="measure this server command instead (needs --port)")
    parser.add_argument("--port", type=int, help="the port --target-cmd listens on")
    parser.add_argument("--duration", type=float, help="seconds per traffic phase")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _parse_plateaus(text: str) -> tuple[int, ...]:
    from connscale.errors import ConfigurationError

    try:
        levels = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigurationError(f"--plateaus must be integers, not {text!r}") from None
    if not levels or levels[0] < 1:
        raise ConfigurationError("--plateaus needs positive connection counts")
    return tuple(levels)


class _RichObserver:
    """Progress bars: one per server, advancing with established connections."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def server_started(self, spec: ServerSpec, plateaus: Any) -> None:
        self.tasks[spec.name] = self.progress.add_task(
            f"{spec.name}: starting", total=max(plateaus)
        )

    def ramp(self, spec: ServerSpec, established: int, goal: int) -> None:
        task = self.tasks.get(spec.name)
        if task is not None:
            self.progress.update(task, completed=established)

    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        uss = f"{plateau.uss / 1e6:.1f} MB" if plateau.uss is not None else "?"
        self.progress.console.print(
            f"  {spec.name}: {plateau.connections:>9,} connections  USS {uss}"
        )

    def phase(self, spec: ServerSpec, text: str) -> None:
        task = self.tasks.get(spec.name)
        if task is not None:
            self.progress.update(task, description=f"{spec.name}: {text}")

    def server_done(self, spec: ServerSpec, result: ServerResult) -> None:
        task = self.tasks.get(spec.name)
        if task is not None:
            self.progress.update(task, description=f"{spec.name}: done")
        if result.error:
            self.progress.console.print(f"  {spec.name}: [yellow]{result.error}[/yellow]")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from connscale.bench import orchestrator as bench
    from connscale.errors import ConfigurationError

    if (args.target_cmd is None) != (args.port is None):
        raise ConfigurationError("--target-cmd and --port go together")
    if args.quick:
        config = bench.BenchConfig.quick()
        top = args.max_connections or max(config.plateaus)
    else:
        top = args.max_connections or bench.DEFAULT_MAX_CONNECTIONS
        config = bench.BenchConfig.default(top)
    if args.plateaus:
        config = replace(config, plateaus=_parse_plateaus(args.plateaus))
        top = max(config.plateaus)
    elif args.max_connections and args.quick:
        config = replace(config, plateaus=tuple(p for p in config.plateaus if p <= top) or (top,))
    if args.duration is not None:
        if args.duration <= 0:
            raise ConfigurationError("--duration must be positive")
        config = replace(config, traffic_duration=args.duration)
    if args.target_cmd is not None:
        servers = [
            bench.custom_server(
                args.target_cmd, args.port, transport=args.transport, max_connections=top
            )
        ]
    else:
        servers = bench.default_servers(
            transport=args.transport, max_connections=top, names=args.servers, quick=args.quick
        )
    command = "connscale bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    console = Console(stderr=True)
    console.print(
        f"connscale bench: {len(servers)} server(s), plateaus "
        f"{', '.join(f'{p:,}' for p in config.plateaus)}"
    )
    if args.no_progress or not console.is_terminal:
        plain: Any = _PlainObserver()  # duck-typed: the module stays light to import
        result = bench.run_bench(servers, config, command=command, observer=plain)
    else:
        columns = (
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            observer: Any = _RichObserver(progress)
            result = bench.run_bench(servers, config, command=command, observer=observer)
    paths = bench.write_outputs(result, args.out)
    print(bench.summary_markdown(result))
    for path in paths:
        console.print(f"wrote {path}")
    failed = [s for s in result.servers if s.error and not s.plateaus]
    return 1 if failed and len(failed) == len(result.servers) else 0


class _PlainObserver:
    """One line per plateau, for logs and pipes."""

    def server_started(self, spec: ServerSpec, plateaus: Any) -> None:
        print(f"{spec.name}: started", file=sys.stderr, flush=True)

    def ramp(self, spec: ServerSpec, established: int, goal: int) -> None:
        pass

    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        uss = f"{plateau.uss / 1e6:.1f} MB" if plateau.uss is not None else "?"
        print(
            f"  {spec.name}: {plateau.connections:>9,} connections  USS {uss}",
            file=sys.stderr,
            flush=True,
        )

    def phase(self, spec: ServerSpec, text: str) -> None:
        print(f"  {spec.name}: {text}", file=sys.stderr, flush=True)

    def server_done(self, spec: ServerSpec, result: ServerResult) -> None:
        status = f"stopped: {result.error}" if result.error else "done"
        print(f"{spec.name}: {status}", file=sys.stderr, flush=True)
