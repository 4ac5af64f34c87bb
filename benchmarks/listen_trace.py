"""Where an open ``subscriptions/listen`` stream's bytes go: tracemalloc, in-process.

    .venv/bin/python -m benchmarks.listen_trace [--engine epoll] [--low 1000] [--high 8000]

The reference server runs in a thread of this process (``connscale.testing.serve_in_thread``,
on a fake clock) and the load generator (``mcp-listen``) opens ``--low`` then ``--high``
listen streams. tracemalloc, filtered to leave the load generator and tracemalloc itself
out, says which lines of the server allocated what per stream between the two counts;
then the fake clock passes the handshake timeout and the same comparison is made again
(a connection's handshake timer lives on the timer wheel until then). The USS slope that
``connscale bench`` measures also counts what Python objects do not show: allocator pages.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from connscale.core.protocol.limits import ServerLimits
from connscale.loadgen.swarm import Swarm
from connscale.testing import serve_in_thread

FILTERS = [
    tracemalloc.Filter(False, "*/connscale/loadgen/*"),
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
]


def snapshot() -> tracemalloc.Snapshot:
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(FILTERS)


def report(label: str, after: tracemalloc.Snapshot, before: tracemalloc.Snapshot, n: int) -> None:
    stats = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in stats)
    print(f"\n{label}: {total / n:+.1f} B per stream traced in all; the largest lines:")
    for stat in sorted(stats, key=lambda s: -abs(s.size_diff))[:5]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / n:+8.1f} B/stream  {stat.count_diff:+7d} blocks  {frame}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.listen_trace")
    parser.add_argument("--engine", choices=("epoll", "asyncio"), default="epoll")
    parser.add_argument("--low", type=int, default=1000)
    parser.add_argument("--high", type=int, default=8000)
    args = parser.parse_args(argv)
    limits = ServerLimits()
    tracemalloc.start(1)
    with serve_in_thread(transport="http", engine=args.engine, limits=limits) as server:
        swarm = Swarm(
            "127.0.0.1", server.port, protocol="mcp-listen", sources=[("127.0.0.2", args.high)]
        )
        try:
            snapshots = []
            for level in (args.low, args.high):
                swarm.grow(level)
                swarm.run_until(lambda: not swarm.growing, time.monotonic() + 120)
                status = swarm.status()
                if status.established != level:
                    raise SystemExit(f"only {status.established} streams: {status.first_error}")
                time.sleep(0.3)
                snapshots.append(snapshot())
            streams = args.high - args.low
            report(f"{args.low:,} -> {args.high:,} streams", snapshots[1], snapshots[0], streams)
            server.advance(limits.handshake_timeout + 1)
            time.sleep(0.5)
            later = snapshot()
            report(
                f"the same, after the handshake timeout ({limits.handshake_timeout:g} s) passed",
                later,
                snapshots[0],
                streams,
            )
            print(
                f"\nstreams held: {swarm.status().established:,}, dropped: {swarm.status().dropped}"
            )
        finally:
            swarm.close_all()
            tracemalloc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
