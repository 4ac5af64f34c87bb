"""Soak: session churn plus steady traffic for a bounded time; does the server's memory leak?

Starts ``connscale serve`` (TCP) in a subprocess and, for the whole run, keeps
``--steady`` sessions pinging at ``--steady-rate`` each per second while new sessions churn
at ``--churn-rate`` per second (connect, initialize, call ``echo``, disconnect). After a
warm-up (the first ``--warmup`` share of the run: arenas, caches and tables grow to their
working size) the profiler samples the server's USS; its Theil-Sen trend with a 95%
interval is the verdict. A leak is a slope whose whole interval lies above zero and that
exceeds ``--leak-bytes-per-session`` bytes per churned session (as bytes per second).

    .venv/bin/python -m benchmarks.soak --minutes 30 --out soak.json
    .venv/bin/python -m benchmarks.soak --seconds 15 --engine asyncio

Exit status: 0 no leak and no failures, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import signal
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._serving import McpClient, echo, percentile, served
from connscale.profile import Profiler


@dataclass
class Counters:
    churned: int = 0
    churn_failures: int = 0
    requests: int = 0
    request_failures: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    interrupted: bool = False

    def failed(self, what: str, exc: BaseException) -> None:
        if len(self.errors) < 10:  # keep the first few for the report, not all of them
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")


async def _steady(port: int, rate: float, stop: asyncio.Event, counters: Counters) -> None:
    period = 1.0 / rate
    client = await McpClient.connect(port)
    try:
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                counters.latencies.append(await client.timed_ping())
                counters.requests += 1
            except (OSError, RuntimeError, ValueError) as exc:
                counters.request_failures += 1
                counters.failed("steady ping", exc)
                await client.close()
                client = await McpClient.connect(port)
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        await client.close()


async def _one_session(port: int, counters: Counters, limit: asyncio.Semaphore) -> None:
    async with limit:
        try:
            client = await McpClient.connect(port)
            try:
                reply = await client.request(echo, "soak")
                if reply["result"]["content"][0]["text"] != "soak":
                    raise RuntimeError(f"wrong echo: {reply}")
            finally:
                await client.close()
            counters.churned += 1
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            counters.churn_failures += 1
            counters.failed("churned session", exc)


async def _churn(port: int, rate: float, stop: asyncio.Event, counters: Counters) -> None:
    limit = asyncio.Semaphore(64)  # bounded: a slow server backs the churn off, not up
    tasks: set[asyncio.Task[None]] = set()
    period = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        task = asyncio.ensure_future(_one_session(port, counters, limit))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    if tasks:
        await asyncio.wait(tasks, timeout=10)


async def soak(
    port: int,
    pid: int,
    *,
    duration: float,
    warmup: float,
    churn_rate: float,
    steady: int,
    steady_rate: float,
    interval: float,
) -> tuple[Counters, Profiler]:
    counters = Counters()
    stop = asyncio.Event()
    workers = [
        asyncio.ensure_future(_steady(port, steady_rate, stop, counters)) for _ in range(steady)
    ]
    workers.append(asyncio.ensure_future(_churn(port, churn_rate, stop, counters)))
    profiler = Profiler(pid, record_gc=False, max_snapshots=100_000)
    interrupted = asyncio.Event()  # SIGTERM/SIGINT: end early, still report what ran
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, interrupted.set)
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(interrupted.wait(), warmup)
    profiler.start()
    while time.monotonic() - started < duration and not interrupted.is_set():
        profiler.snapshot()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupted.wait(), interval)
    profiler.snapshot()
    profiler.stop()
    counters.elapsed = time.monotonic() - started
    counters.interrupted = interrupted.is_set()
    stop.set()
    await asyncio.gather(*workers)
    return counters, profiler


def run(args: argparse.Namespace) -> dict[str, Any]:
    duration = args.seconds if args.seconds is not None else args.minutes * 60.0
    warmup = duration * args.warmup
    interval = args.interval or min(5.0, max(0.1, (duration - warmup) / 300))
    arguments = ["--engine", args.engine, "--max-connections", "2000"]
    if args.handshake_timeout is not None:
        arguments += ["--handshake-timeout", str(args.handshake_timeout)]
    wall_started = time.time()
    with served(arguments) as server:
        counters, profiler = asyncio.run(
            soak(
                server.port,
                server.pids[0],
                duration=duration,
                warmup=warmup,
                churn_rate=args.churn_rate,
                steady=args.steady,
                steady_rate=args.steady_rate,
                interval=interval,
            )
        )
    record = profiler.record()
    threshold = args.leak_bytes_per_session * args.churn_rate
    result = record.trend("uss", threshold=threshold)
    uss = [snap.memory.uss for snap in record.snapshots if snap.memory.uss is not None]
    failures = counters.churn_failures + counters.request_failures
    latencies = list(counters.latencies)
    summary: dict[str, Any] = {
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall_started)),
        "engine": args.engine,
        "duration_s": round(counters.elapsed, 1),
        "planned_s": round(duration, 1),
        "interrupted": counters.interrupted,
        "warmup_s": round(warmup, 1),
        "sessions_churned": counters.churned,
        "churn_failures": counters.churn_failures,
        "steady_sessions": args.steady,
        "requests": counters.requests,
        "request_failures": counters.request_failures,
        "ping_p50_ms": round(percentile(latencies, 0.50) * 1e3, 3),
        "ping_p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
        "samples": result.n,
        "uss_first": uss[0] if uss else None,
        "uss_last": uss[-1] if uss else None,
        "uss_max": max(uss) if uss else None,
        "slope_bytes_per_s": result.slope,
        "slope_ci95": [result.slope_low, result.slope_high],
        "slope_bytes_per_session": result.slope / args.churn_rate,
        "threshold_bytes_per_s": threshold,
        "leak": result.leak,
        "verdict": result.reason,
        "errors": counters.errors,
        "ok": not result.leak and failures == 0 and counters.churned > 0,
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, help="overrides --minutes (short runs)")
    parser.add_argument("--engine", choices=("epoll", "asyncio"), default="epoll")
    parser.add_argument("--churn-rate", type=float, default=50.0, help="new sessions per second")
    parser.add_argument("--steady", type=int, default=20, help="long-lived pinging sessions")
    parser.add_argument("--steady-rate", type=float, default=10.0, help="pings/s per session")
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run not sampled")
    parser.add_argument("--interval", type=float, help="seconds between memory samples")
    parser.add_argument("--leak-bytes-per-session", type=float, default=8.0)
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        help="the server's (a closed connection's timer lingers this long: keep it under the "
        "warm-up in short runs)",
    )
    parser.add_argument("--out", type=Path, help="write the summary JSON here")
    args = parser.parse_args(argv)
    duration = args.seconds if args.seconds is not None else args.minutes * 60.0
    if duration <= 0 or args.churn_rate <= 0 or args.steady_rate <= 0 or args.steady < 0:
        parser.error("duration and rates must be > 0")
    if not 0.0 <= args.warmup < 0.9:
        parser.error("--warmup is a share of the run in [0, 0.9)")
    summary = run(args)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
