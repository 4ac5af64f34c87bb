"""Stateless requests leave nothing behind: the server's USS before and after 100,000 calls.

    .venv/bin/python -m benchmarks.stateless_memory                 # both engines and the SDK
    .venv/bin/python -m benchmarks.stateless_memory --calls 20000 --sdk-calls 0

For each server: ``connscale serve --transport http --engine E`` (one worker, E = epoll and
asyncio), and the official SDK's ``MCPServer`` (``connscale.bench.baselines mcp-sdk``) as the
baseline of the same run. The load generator (``mcp-stateless``, in this process) opens a
few kept-alive connections (each asks ``server/discover``) and sends a warm-up of stateless
``tools/call echo`` requests (what the first calls allocate once: caches, pools, interned
strings). Then, with the connections held:

1. USS of the server (median of several readings of ``smaps_rollup``): *before*;
2. idle for as long as the calls will take: USS again, *idle*; the difference is the drift
   of a server doing nothing, the noise floor this check is read against;
3. the calls, closed loop, in phases of about a second (their rate is the median of the
   phases' rates): at least ``--calls`` stateless tool calls, all answered without error;
4. a short settle, then USS: *after*. Target: after - idle within 1 MB.

A stateless request has no session: nothing it leaves in the server may outlive it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from connscale.bench.lifecycle import RunningServer, running_server
from connscale.bench.orchestrator import machine
from connscale.bench.targets import ServerSpec, default_servers
from connscale.errors import ConnscaleError
from connscale.loadgen.swarm import Swarm
from connscale.memory import sample

TARGET_BYTES = 1 << 20
#: The connections are held through the idle period (the SDK's uvicorn gets the same).
KEEPALIVE_SECONDS = 3600
READINGS = 9


@dataclass
class Outcome:
    name: str
    calls: int
    errors: int
    rps: float
    before: int
    idle: int
    after: int

    @property
    def left(self) -> int:
        return self.after - self.idle

    @property
    def drift(self) -> int:
        return self.idle - self.before


def uss(server: RunningServer, readings: int = READINGS) -> int:
    """Median USS summed over the server's processes, ``readings`` readings 0.1 s apart."""
    values = []
    for _ in range(readings):
        values.append(sum(sample(pid).uss or 0 for pid in server.current_pids()))
        time.sleep(0.1)
    return int(statistics.median(values))


def connscale_spec(engine: str) -> ServerSpec:
    serve = (sys.executable, "-m", "connscale", "serve", "--transport", "http")
    serve += ("--engine", engine, "--workers", "1", "--port", "0")
    serve += ("--http-keepalive-timeout", str(KEEPALIVE_SECONDS))
    return ServerSpec(
        name=f"connscale-{engine}", argv=serve, transport="http", protocol="mcp-stateless"
    )


def drive(swarm: Swarm, calls: int, *, concurrency: int, phase: float) -> tuple[int, int, float]:
    """At least ``calls`` closed-loop echo calls: (answered, errors, median rate per phase).

    Phases last ``phase`` seconds; the last one is cut to what the remaining calls need at
    the rate seen so far, so the count ends close to ``calls``.
    """
    answered = errors = 0
    rates: list[float] = []
    while answered + errors < calls:
        duration = phase
        if rates:
            duration = min(phase, max(0.05, (calls - answered - errors) / rates[-1] * 1.02))
        swarm.start_traffic(duration=duration, concurrency=concurrency, mix=(("echo", 1.0),))
        swarm.run_until(lambda: swarm.traffic_result() is not None, time.monotonic() + 60)
        result = swarm.traffic_result()
        if result is None:
            raise ConnscaleError("a traffic phase did not finish within 60 s")
        answered += result.requests
        errors += result.errors
        if not result.requests:
            raise ConnscaleError(f"no call answered in a phase: {swarm.status().first_drop}")
        rates.append(result.throughput_rps)
        if sys.stderr.isatty():
            print(f"    {answered + errors:,} calls", end="\r", file=sys.stderr, flush=True)
    full = rates[:-1] or rates  # the cut last phase is not a full one
    return answered, errors, statistics.median(full)


def measure(
    spec: ServerSpec, workdir: Path, *, calls: int, warmup: int, connections: int
) -> Outcome:
    print(f"{spec.name}: starting", file=sys.stderr, flush=True)
    with running_server(spec, workdir, start_timeout=60) as server:
        swarm = Swarm(server.host, server.port, protocol="mcp-stateless")
        try:
            swarm.grow(connections)
            swarm.run_until(lambda: not swarm.growing, time.monotonic() + 30)
            status = swarm.status()
            if status.established != connections:
                raise ConnscaleError(f"{spec.name}: {status.first_error}")
            print(f"  {spec.name}: warm-up ({warmup:,} calls)", file=sys.stderr, flush=True)
            _, _, warm_rate = drive(swarm, warmup, concurrency=connections, phase=0.5)
            time.sleep(1.0)
            before = uss(server)
            idle_seconds = min(120.0, calls / max(warm_rate, 1.0))
            print(f"  {spec.name}: idle {idle_seconds:.0f} s", file=sys.stderr, flush=True)
            time.sleep(idle_seconds)
            idle = uss(server)
            print(f"  {spec.name}: {calls:,} calls", file=sys.stderr, flush=True)
            answered, errors, rate = drive(swarm, calls, concurrency=connections, phase=1.0)
            time.sleep(1.0)
            after = uss(server)
            if swarm.status().dropped:
                raise ConnscaleError(f"{spec.name}: {swarm.status().first_drop}")
        finally:
            swarm.close_all()
    return Outcome(spec.name, answered + errors, errors, rate, before, idle, after)


def _kib(value: int) -> str:
    return f"{value / 1024:+,.0f} KiB" if value else "0 B"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stateless_memory")
    parser.add_argument("--calls", type=int, default=100_000, help="calls per connscale engine")
    parser.add_argument("--sdk-calls", type=int, default=10_000, help="calls to the SDK (0: skip)")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--engines", nargs="+", default=["epoll", "asyncio"])
    args = parser.parse_args(argv)
    m = machine()
    print(f"machine: {m.cpus} CPUs, {m.memory_bytes / 2**30:.0f} GiB, Python {m.python}")
    specs = [(connscale_spec(engine), args.calls) for engine in args.engines]
    if args.sdk_calls:
        sdk = default_servers(names=["mcp-sdk:mcp-stateless"], max_connections=1000)[0]
        if sdk.unavailable:
            print(f"mcp-sdk: not run: {sdk.unavailable}", file=sys.stderr)
        else:
            specs.append((sdk, args.sdk_calls))
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="connscale-") as workdir:
        for spec, calls in specs:
            outcomes.append(
                measure(
                    spec,
                    Path(workdir),
                    calls=calls,
                    warmup=min(args.warmup, calls),
                    connections=args.connections,
                )
            )
    baseline = next((o for o in outcomes if o.name.startswith("mcp-sdk")), None)
    print()
    print(
        "| server | stateless calls | errors | req/s (median of ~1 s phases) | vs SDK | "
        "USS before | idle drift (no calls, same time) | after calls - idle | target <= 1 MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for o in outcomes:
        ratio = f"{o.rps / baseline.rps:.1f}x" if baseline and baseline.rps else "-"
        verdict = "met" if abs(o.left) <= TARGET_BYTES else "**missed**"
        print(
            f"| {o.name} | {o.calls:,} | {o.errors} | {o.rps:,.0f} | {ratio} | "
            f"{o.before / 1e6:.1f} MB | {_kib(o.drift)} | {_kib(o.left)} | {verdict} |"
        )
    return 0 if all(abs(o.left) <= TARGET_BYTES and not o.errors for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
