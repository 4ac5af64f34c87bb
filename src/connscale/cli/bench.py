"""``connscale bench``: servers side by side (the reference server, baselines, your own)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connscale.bench.config import BenchConfig
    from connscale.bench.targets import ServerSpec
    from connscale.report.schema import Plateau, ServerResult

HELP = "measure memory per connection of any long-lived-connection server, beside baselines"
DESCRIPTION = """\
Start each server, ramp real loopback connections through the same plateaus, sample
each server's memory after the ramp settles (USS and PSS summed over its processes),
fit fixed overhead and marginal bytes per connection (a least-squares slope, never
total/N), count the kernel memory of the server's own sockets, then measure latency
and throughput. Writes RUN.json, SUMMARY.md, report.md and report.html (one table and
one chart for every server) to --out.

Servers: without --target, the reference server (`connscale serve`) and the MCP
baselines for --transport (asyncio streams, asyncio Protocol, uvloop Protocol; the
official MCP SDK for http). --servers picks baselines by name and is always honored,
beside your targets too: connscale, asyncio-streams, asyncio-protocol, uvloop-protocol,
mcp-sdk, websockets-echo and aiohttp-ws (WebSocket), asyncio-tcp-echo (raw TCP),
aiohttp-sse (SSE), aiohttp-keepalive (HTTP keep-alive), or all. NAME:PROTOCOL measures
a server in another protocol it speaks: connscale (mcp, mcp-http, mcp-listen,
mcp-stateless) and mcp-sdk (mcp-http, mcp-listen, mcp-stateless). MCP 2026-07-28 listen
streams side by side:
  connscale bench --servers connscale:mcp-listen mcp-sdk:mcp-listen \\
      --plateaus 1000,2000,4000,8000,16000
(the SDK refuses a process's 1,025th listen stream, so it is measured at the ladder
scaled down to 1,000).

Your own servers: --target NAME:PROTOCOL[/PATH]:PORT:COMMAND, repeatable. The bench
starts COMMAND (the rest of the text, colons included), waits for PORT, and speaks
PROTOCOL to it:
  mcp        MCP over TCP (newline-delimited JSON-RPC, initialize handshake)
  mcp-http   MCP Streamable HTTP (POSTs to PATH, default /mcp)
  mcp-listen     MCP 2026-07-28: one subscriptions/listen stream per connection
                 (POST to PATH, default /mcp), held from its acknowledgement
  mcp-stateless  MCP 2026-07-28: server/discover, then held on keep-alive;
                 stateless tools/call traffic
  websocket  RFC 6455 handshake to PATH (default /), then held; ping traffic
  tcp        raw TCP, held once connected; --probe LINE checks each connection
             (a line back) and gives echo traffic
  sse        GET PATH (default /events) with Accept: text/event-stream, held
  http       one GET PATH (default /), then the idle keep-alive connection is held
Example:
  connscale bench --target chat:websocket/ws:18001:"python chat.py 18001" \\
      --target feed:tcp:18002:"python feed.py" --probe ping --servers websockets-echo

A server written for the official MCP SDK: --app FILE.py:ATTR (its MCPServer or FastMCP
object) runs that one object twice in the same run, on the SDK's own server (uvicorn,
Streamable HTTP, keep-alive held) and on connscale (`connscale serve --app`), one worker
each: bytes per held session, set-up CPU per session, then tools/call throughput and p99
latency with the tool --call names (arguments from --arguments; default: the first tool
that needs none). Example:
  connscale bench --app myserver.py:mcp --call add --arguments '{"a": 1, "b": 2}'

Honest runs: a port already in use is refused before anything starts; connections the
server drops during a plateau stop that server (with the count and the first reason) and
no marginal is published from a partial run; Ctrl-C writes RUN.json with the plateaus
measured so far, marked incomplete. Any failure is one line on stderr and exit code 2.

The default run ends within about ten minutes on a 2-core machine and takes the
reference server to 100,000 connections (others to 15,000: one process each).
--quick is a CI-sized smoke run (under a minute).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from connscale.loadgen.protocols import PROTOCOL_NAMES

    parser.add_argument("--quick", action="store_true", help="a small smoke run (< 1 minute)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder")
    parser.add_argument(
        "--servers",
        nargs="+",
        metavar="NAME",
        help="baselines to run, always honored (NAME or NAME:PROTOCOL, see above; 'all')",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME:PROTOCOL[/PATH]:PORT:COMMAND",
        help="your own server (repeatable); see above",
    )
    parser.add_argument(
        "--transport",
        choices=("tcp", "http"),
        default="tcp",
        help="the reference server's transport (MCP over TCP or Streamable HTTP)",
    )
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
    parser.add_argument(
        "--target-cmd", help="one server of your own: its command (needs --port; see --protocol)"
    )
    parser.add_argument("--port", type=int, help="the port --target-cmd listens on")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOL_NAMES,
        default="mcp",
        help="what --target-cmd speaks (default mcp)",
    )
    parser.add_argument("--path", help="HTTP path for --target-cmd (websocket, sse, http)")
    parser.add_argument(
        "--probe", metavar="LINE", help="raw TCP targets: a line each connection must answer"
    )
    parser.add_argument(
        "--app",
        metavar="FILE.py:ATTR",
        help="a server written for the official MCP SDK: on the SDK's own server and on "
        "connscale, side by side (see above)",
    )
    parser.add_argument("--call", metavar="TOOL", help="--app: the tool the traffic calls")
    parser.add_argument(
        "--arguments", metavar="JSON", default=None, help="--app: the tool's arguments (JSON)"
    )
    parser.add_argument("--duration", type=float, help="seconds per traffic phase")
    parser.add_argument(
        "--throughput-connections",
        type=int,
        metavar="N",
        help="connections the closed-loop throughput phase runs at (default 10000, or fewer "
        "when fewer are held)",
    )
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


def bench_config(args: argparse.Namespace) -> tuple[BenchConfig, int]:
    """The run's settings and its top plateau, from the arguments."""
    from dataclasses import replace

    from connscale.bench import config as settings
    from connscale.errors import ConfigurationError

    if args.quick:
        config = settings.BenchConfig.quick()
        top = args.max_connections or max(config.plateaus)
    else:
        top = args.max_connections or settings.DEFAULT_MAX_CONNECTIONS
        config = settings.BenchConfig.default(top)
    if args.plateaus:
        config = replace(config, plateaus=_parse_plateaus(args.plateaus))
        top = max(config.plateaus)
    elif args.max_connections and args.quick:
        config = replace(config, plateaus=tuple(p for p in config.plateaus if p <= top) or (top,))
    if args.duration is not None:
        if args.duration <= 0:
            raise ConfigurationError("--duration must be positive")
        config = replace(config, traffic_duration=args.duration)
    if getattr(args, "throughput_connections", None) is not None:
        if args.throughput_connections < 1:
            raise ConfigurationError("--throughput-connections must be positive")
        config = replace(config, throughput_connections=args.throughput_connections)
    return config, top


def chosen_servers(args: argparse.Namespace, top: int) -> list[ServerSpec]:
    """Your targets first, then the baselines (``--servers``, always honored)."""
    from connscale.bench import targets
    from connscale.errors import ConfigurationError

    if (args.target_cmd is None) != (args.port is None):
        raise ConfigurationError("--target-cmd and --port go together")
    if args.probe is not None and not (args.protocol == "tcp" or args.target):
        raise ConfigurationError("--probe is for raw TCP targets (protocol tcp)")
    specs = [
        targets.parse_target(text, max_connections=top, probe=args.probe) for text in args.target
    ]
    app = getattr(args, "app", None)
    if app is not None:
        call = tool_call(app, args.call, args.arguments)
        specs += targets.sdk_app_servers(app, call=call, max_connections=top)
    elif args.call is not None or args.arguments is not None:
        raise ConfigurationError("--call and --arguments go with --app")
    if args.target_cmd is not None:
        specs.append(
            targets.custom_server(
                args.target_cmd,
                args.port,
                transport=args.transport,
                protocol=args.protocol,
                path=args.path,
                probe=args.probe if args.protocol == "tcp" else None,
                max_connections=top,
            )
        )
    if args.servers is not None or not specs:
        specs += targets.default_servers(
            transport=args.transport, max_connections=top, names=args.servers, quick=args.quick
        )
    return specs


def tool_call(app: str, name: str | None, arguments: str | None) -> str:
    """The ``tools/call`` params (JSON) the traffic phases of ``--app`` send.

    Without ``name``, the app is loaded here to find its first tool that needs no
    arguments (or, with ``arguments``, its first tool).
    """
    import json

    from connscale.errors import ConfigurationError

    try:
        values = json.loads(arguments) if arguments is not None else {}
    except ValueError as exc:
        raise ConfigurationError(f"--arguments is not JSON: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigurationError("--arguments must be a JSON object")
    if name is None:
        from connscale.server.loading import load_app

        tools = list(load_app(app).listing("tools"))
        fits = [
            tool
            for tool in tools
            if arguments is not None or not (tool.get("inputSchema") or {}).get("required")
        ]
        if not fits:
            raise ConfigurationError(
                f"--app {app!r}: "
                + ("it has no tools" if not tools else "every tool needs arguments")
                + "; name the tool to call and its arguments: --call TOOL --arguments JSON"
            )
        name = str(fits[0]["name"])
    return json.dumps({"name": name, "arguments": values}, separators=(",", ":"))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from connscale.bench import orchestrator as bench
    from connscale.errors import MeasurementError

    config, top = bench_config(args)
    servers = chosen_servers(args, top)
    bench.check_servers(servers)  # before any output: a refused run starts nothing
    command = "connscale bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    console = Console(stderr=True)
    console.print(
        f"connscale bench: {len(servers)} server(s) "
        f"({', '.join(f'{s.name} ({s.protocol})' for s in servers)}), plateaus "
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
        print(f"wrote {path}", file=sys.stderr)
    if result.incomplete:
        print(
            f"connscale bench: interrupted; the plateaus measured so far are in {paths[0]} "
            "(marked incomplete)",
            file=sys.stderr,
        )
        return 130
    failed = bench.failures(result)
    if failed:
        first = failed[0]
        raise MeasurementError(
            f"{len(failed)} of {len(result.servers)} server(s) failed; {first.name}: "
            f"{first.error} (results in {paths[0]})"
        )
    return 0


class _RichObserver:
    """Progress bars: one per server, advancing with established connections."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def server_started(self, spec: ServerSpec, plateaus: Any) -> None:
        self.tasks[spec.name] = self.progress.add_task(
            f"{spec.name}: starting", total=max(plateaus)
        )

    def target_started(self, spec: ServerSpec, target: Any) -> None:
        pass

    def ramp(self, spec: ServerSpec, established: int, goal: int) -> None:
        task = self.tasks.get(spec.name)
        if task is not None:
            self.progress.update(task, completed=established)

    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        self.progress.console.print(_plateau_line(spec, plateau))

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


def _plateau_line(spec: ServerSpec, plateau: Plateau) -> str:
    uss = f"{plateau.uss / 1e6:.1f} MB" if plateau.uss is not None else "?"
    pss = f"{plateau.pss / 1e6:.1f} MB" if plateau.pss is not None else "?"
    return f"  {spec.name}: {plateau.connections:>9,} connections  USS {uss}  PSS {pss}"


class _PlainObserver:
    """Whole lines only (for logs and pipes): an error never lands inside progress."""

    def server_started(self, spec: ServerSpec, plateaus: Any) -> None:
        print(f"{spec.name}: started", file=sys.stderr, flush=True)

    def target_started(self, spec: ServerSpec, target: Any) -> None:
        pass

    def ramp(self, spec: ServerSpec, established: int, goal: int) -> None:
        pass

    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        print(_plateau_line(spec, plateau), file=sys.stderr, flush=True)

    def phase(self, spec: ServerSpec, text: str) -> None:
        print(f"  {spec.name}: {text}", file=sys.stderr, flush=True)

    def server_done(self, spec: ServerSpec, result: ServerResult) -> None:
        status = f"stopped: {result.error}" if result.error else "done"
        print(f"{spec.name}: {status}", file=sys.stderr, flush=True)
