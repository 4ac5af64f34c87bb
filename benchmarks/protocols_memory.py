"""Bench's marginal bytes per connection against an independent reading, for every protocol.

    python -m benchmarks.protocols_memory [--plateaus 1000,3000,5000] [--servers NAME ...]

For each server, ``connscale bench``'s own measurement (``measure_server``: settled
plateaus, USS summed over the server's processes, least-squares slope) runs while an
observer reads the server's ``/proc/PID/smaps_rollup`` itself at every plateau, parsed here
without connscale. The table compares bench's marginal with the independent slope between
the lowest and the highest connection count, and records the load generator's own bytes
per held connection for each protocol (it must stay far below the servers').
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from connscale.bench.config import BenchConfig
from connscale.bench.lifecycle import RunningServer
from connscale.bench.observer import BenchObserver
from connscale.bench.orchestrator import machine, measure_server
from connscale.bench.targets import ServerSpec, default_servers
from connscale.report.schema import Plateau

DEFAULT_SERVERS = (
    "websockets-echo",
    "aiohttp-ws",
    "asyncio-tcp-echo",
    "aiohttp-sse",
    "aiohttp-keepalive",
    "asyncio-streams",
    "asyncio-protocol",
    "connscale",
)


def independent_uss(pid: int) -> int:
    """Private_Clean + Private_Dirty (+ Private_Hugetlb) of smaps_rollup, in bytes."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as file:
        for line in file:
            name, _, rest = line.partition(":")
            if name in ("Private_Clean", "Private_Dirty", "Private_Hugetlb"):
                total += int(rest.split()[0]) * 1024
    return total


class Independent(BenchObserver):
    def __init__(self) -> None:
        self.target: RunningServer | None = None
        self.readings: dict[int, int] = {}

    def target_started(self, spec: ServerSpec, target: RunningServer) -> None:
        self.target = target

    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        assert self.target is not None
        self.readings[plateau.connections] = sum(
            independent_uss(pid) for pid in self.target.current_pids()
        )

    def phase(self, spec: ServerSpec, text: str) -> None:
        print(f"  {spec.name}: {text}", flush=True)


def _n(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.protocols_memory")
    parser.add_argument("--plateaus", default="1000,3000,5000")
    parser.add_argument("--servers", nargs="+", default=list(DEFAULT_SERVERS))
    args = parser.parse_args(argv)
    plateaus = tuple(sorted(int(p) for p in args.plateaus.split(",")))
    config = BenchConfig(plateaus=plateaus, traffic_duration=1.0, throughput_connections=1000)
    top = plateaus[-1]
    m = machine()
    print(f"machine: {m.cpus} CPUs, {m.memory_bytes / 2**30:.0f} GiB, Python {m.python}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="connscale-") as workdir:
        for spec in default_servers(names=args.servers, max_connections=top, quick=True):
            observer = Independent()
            result = measure_server(spec, config, Path(workdir), observer)
            low, high = plateaus[0], plateaus[-1]
            independent = None
            if low in observer.readings and high in observer.readings:
                independent = (observer.readings[high] - observer.readings[low]) / (high - low)
            marginal = result.scaling.marginal_bytes if result.scaling else None
            ratio = marginal / independent if marginal is not None and independent else None
            rows.append(
                f"| {spec.name} | {spec.protocol} | {_n(marginal)} | "
                f"{_n(result.scaling.step_cv if result.scaling else None, '{:.3f}')} | "
                f"{_n(independent)} | {_n(ratio, '{:.3f}')} | "
                f"{_n(result.pss_total / 1e6 if result.pss_total else None, '{:.1f} MB')} | "
                f"{_n(result.kernel_bytes_per_socket)} | "
                f"{_n(result.loadgen_bytes_per_connection)} | {result.error or ''} |"
            )
            print(rows[-1], flush=True)
    print()
    print(
        "| server | protocol | bench marginal B/conn (USS slope) | step CV | independent "
        f"smaps_rollup slope {plateaus[0]:,}->{plateaus[-1]:,} | ratio | total PSS at "
        f"{top:,} | kernel B/socket (its sockets) | load generator B/conn | error |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
