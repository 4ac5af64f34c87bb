"""``connscale loadgen``: open N real MCP connections, hold them, optionally drive traffic."""

from __future__ import annotations

import argparse
import json
import sys
import time

HELP = "open and hold N real MCP connections against a server; optional request traffic"
DESCRIPTION = """\
Open --connections real connections to --target (TCP: newline-delimited JSON-RPC; HTTP:
MCP Streamable HTTP), perform the MCP handshake on each, and hold them. The connections
are spread over several processes and loopback source addresses so that neither the
per-process open-files limit nor the ephemeral ports of one address stop the run.

With --rate (requests per second per connection, open loop) or --concurrency (requests
in flight, closed loop) it drives a ping / tools/call mix for --duration seconds and
prints throughput and latency percentiles (p50, p99, p99.9). Everything stops by itself.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, metavar="HOST:PORT")
    parser.add_argument("--transport", choices=("tcp", "http"), default="tcp")
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of traffic/hold")
    parser.add_argument("--rate", type=float, help="requests/s per connection (open loop)")
    parser.add_argument(
        "--concurrency", type=int, help="requests in flight over all connections (closed loop)"
    )
    parser.add_argument(
        "--mix",
        default="ping",
        help="request mix, e.g. ping=0.8,echo=0.2 (ping, echo, list, experts)",
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
    from connscale.errors import ConfigurationError
    from connscale.loadgen.client import parse_mix
    from connscale.loadgen.plan import plan_load, read_limits
    from connscale.loadgen.runner import LoadRunner

    host, port = _parse_target(args.target)
    if args.connections < 1:
        raise ConfigurationError("--connections must be at least 1")
    if args.duration <= 0:
        raise ConfigurationError("--duration must be positive")
    if args.rate is not None and args.concurrency is not None:
        raise ConfigurationError("use --rate (open loop) or --concurrency (closed loop), not both")
    mix = parse_mix(args.mix)
    plan = plan_load(
        args.connections, limits=read_limits(), target_host=host, processes=args.processes
    )
    print(f"plan: {plan.describe()}", file=sys.stderr)

    def progress(established: int, goal: int, failed: int) -> None:
        print(
            f"\r  {established:,}/{goal:,} established, {failed} failed",
            end="",
            file=sys.stderr,
            flush=True,
        )

    report: dict[str, object] = {"target": args.target, "transport": args.transport}
    max_seconds = args.timeout + args.duration + 120.0
    with LoadRunner(
        plan, host, port, transport=args.transport, max_seconds=max_seconds, on_progress=progress
    ) as runner:
        grown = runner.grow_to(args.connections, timeout=args.timeout)
        print(file=sys.stderr)
        report["connections"] = grown.established
        report["connect_seconds"] = round(grown.seconds, 3)
        if args.rate is None and args.concurrency is None:
            time.sleep(args.duration)  # hold the connections
            report["held"] = runner.status().established
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
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>16}: {value}")
    return 0
