"""``connscale loadgen``: open N real connections in a chosen protocol, hold them, drive traffic."""

from __future__ import annotations

import argparse
import json
import time

HELP = "open and hold N real connections (MCP, WebSocket, TCP, SSE, HTTP); optional traffic"
DESCRIPTION = """\
Open --connections real connections to --target in --protocol and hold them. The
connections are spread over several processes and loopback source addresses so that
neither the per-process open-files limit nor the ephemeral ports of one address stop
the run.

Protocols: mcp (MCP over TCP: newline-delimited JSON-RPC, initialize handshake; the
default), mcp-http (MCP Streamable HTTP), mcp-listen (MCP 2026-07-28: one
subscriptions/listen stream per connection, held from its acknowledgement, events
counted), mcp-stateless (MCP 2026-07-28: server/discover, then stateless requests on
keep-alive), websocket (RFC 6455 handshake to --path, then held), tcp (raw TCP: held as
soon as connected; --probe LINE sends a line each connection must answer), sse (GET
--path with Accept: text/event-stream, held, events counted), http (one GET --path, then
the idle keep-alive connection is held).

With --rate (requests per second per connection, open loop) or --concurrency (requests
in flight, closed loop) it drives traffic for --duration seconds and prints throughput
and latency percentiles (p50, p99, p99.9): MCP ping / tools/call (--mix; stateless
tools/call for mcp-stateless), WebSocket ping or echo, the TCP probe line echoed, a
repeated HTTP GET. Connections the server drops while they are held are counted with the
first reason seen, and make the run fail (exit 2). Everything stops by itself.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from connscale.loadgen.protocols import PROTOCOL_NAMES

    parser.add_argument("--target", required=True, metavar="HOST:PORT")
    parser.add_argument(
        "--protocol", choices=PROTOCOL_NAMES, default="mcp", help="what the target speaks"
    )
    parser.add_argument(
        "--path", help="HTTP path (websocket /, sse /events, http /, mcp-* over HTTP /mcp)"
    )
    parser.add_argument("--probe", metavar="LINE", help="tcp: a line each connection must answer")
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of traffic/hold")
    parser.add_argument("--rate", type=float, help="requests/s per connection (open loop)")
    parser.add_argument(
        "--concurrency", type=int, help="requests in flight over all connections (closed loop)"
    )
    parser.add_argument(
        "--mix",
        help="request mix, e.g. ping=0.8,echo=0.2 (mcp: ping, echo, list, experts; "
        "mcp-stateless: echo, experts, list, discover; websocket: ping, echo; tcp: echo; "
        "http: get)",
    )
    parser.add_argument("--processes", type=int, help="client processes (default: planned)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to connect all")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _parse_target(text: str) -> tuple[str, int]:
    from connscale.errors import ConfigurationError

    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"--target must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port_text)


def run(args: argparse.Namespace) -> int:
    from connscale.cli._progress import LineProgress
    from connscale.errors import ConfigurationError, LoadError
    from connscale.loadgen.plan import plan_load, read_limits
    from connscale.loadgen.runner import LoadRunner
    from connscale.loadgen.swarm import parse_mix

    host, port = _parse_target(args.target)
    if args.connections < 1:
        raise ConfigurationError("--connections must be at least 1")
    if args.duration <= 0:
        raise ConfigurationError("--duration must be positive")
    if args.rate is not None and args.concurrency is not None:
        raise ConfigurationError("use --rate (open loop) or --concurrency (closed loop), not both")
    if args.probe is not None and args.protocol != "tcp":
        raise ConfigurationError("--probe is for --protocol tcp")
    plan = plan_load(
        args.connections, limits=read_limits(), target_host=host, processes=args.processes
    )
    max_seconds = args.timeout + args.duration + 120.0
    runner = LoadRunner(
        plan,
        host,
        port,
        protocol=args.protocol,
        path=args.path,
        probe=args.probe,
        max_seconds=max_seconds,
    )
    traffic = args.rate is not None or args.concurrency is not None
    mix_text = args.mix or runner.protocol.traffic_mix()
    if traffic and mix_text is None:
        raise ConfigurationError(
            f"the {args.protocol} protocol has no request to time"
            + (" without --probe" if args.protocol == "tcp" else "")
        )
    mix = parse_mix(mix_text, runner.protocol.request_kinds) if traffic and mix_text else ()
    report: dict[str, object] = {"target": args.target, "protocol": args.protocol}
    with LineProgress() as progress:
        progress.line(f"plan: {plan.describe()}")

        def on_progress(established: int, goal: int, failed: int) -> None:
            progress.update(f"  {established:,}/{goal:,} established, {failed} failed")

        runner.on_progress = on_progress
        with runner:
            grown = runner.grow_to(args.connections, timeout=args.timeout)
            progress.end_line()
            report["connections"] = grown.established
            report["connect_seconds"] = round(grown.seconds, 3)
            if not traffic:
                time.sleep(args.duration)  # hold the connections
                status = runner.status()
                report["held"] = status.established
            else:
                result = runner.traffic(
                    duration=args.duration,
                    rate=args.rate,
                    concurrency=args.concurrency or 64,
                    mix=mix,
                )
                report.update(
                    requests=result.requests,
                    errors=result.errors,
                    skipped=result.skipped,
                    throughput_rps=round(result.throughput_rps, 1),
                    p50_ms=result.percentile_ms(50),
                    p99_ms=result.percentile_ms(99),
                    p999_ms=result.percentile_ms(99.9),
                    max_ms=result.max_ms(),
                )
                status = runner.status()
            report["dropped"] = status.dropped
            if status.events:
                report["server_events"] = status.events
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>16}: {value}")
    if status.dropped:
        raise LoadError(
            f"the server dropped {status.dropped} of {grown.established} held connections "
            f"(first: {status.first_drop})"
        )
    return 0
