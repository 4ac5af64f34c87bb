"""Micro-benchmark of the instruments: cost of one memory sample and history bytes per day.

Run: ``python -m benchmarks.micro_instruments`` (``--quick`` for fewer repeats). Baseline in
the same run: ``psutil.Process().memory_full_info()`` (USS/PSS via psutil) and
``memory_info()`` (RSS only). Timings are medians of repeats of many calls each.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence

import psutil

from connscale.memory import MemoryReader
from connscale.monitor import SAMPLES_PER_DAY_AT_BASE, History, Monitor

#: Targets from the instruments issue.
SAMPLE_TARGET_US = 50.0
HISTORY_TARGET_BYTES = 1_000_000


def median_us(func: Callable[[], object], *, number: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean time of one call, in microseconds."""
    runs = timeit.repeat(func, number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e6


def measure(quick: bool = False) -> list[tuple[str, float, str]]:
    """Rows of (what, value, unit)."""
    number, repeat = (200, 5) if quick else (1000, 9)
    reader = MemoryReader()
    process = psutil.Process()
    monitor = Monitor(full_every=0)  # quick ticks only: what the monitor does between full reads
    rows: list[tuple[str, float, str]] = [
        (
            "sample_quick() (status + fd count)",
            median_us(reader.sample_quick, number=number, repeat=repeat),
            "us",
        ),
        (
            "Monitor.tick() (quick sample + history + policy)",
            median_us(monitor.tick, number=number, repeat=repeat),
            "us",
        ),
        (
            "sample() (smaps_rollup: exact USS/PSS)",
            median_us(reader.sample, number=number // 4, repeat=repeat),
            "us",
        ),
        (
            "baseline: psutil memory_full_info()",
            median_us(process.memory_full_info, number=number // 4, repeat=repeat),
            "us",
        ),
        (
            "baseline: psutil memory_info() (RSS only)",
            median_us(process.memory_info, number=number, repeat=repeat),
            "us",
        ),
    ]
    # The exact reading walks every resident page: show how it grows with memory.
    ballast = bytearray(256 << 20)
    ballast[::4096] = b"\x01" * len(range(0, len(ballast), 4096))
    rows.append(
        (
            "sample() with 256 MiB more resident",
            median_us(reader.sample, number=20, repeat=repeat),
            "us",
        )
    )
    rows.append(
        (
            "sample_quick() with 256 MiB more resident",
            median_us(reader.sample_quick, number=number, repeat=repeat),
            "us",
        )
    )
    del ballast
    history = History(SAMPLES_PER_DAY_AT_BASE)
    rows.append(
        (
            f"History bytes for a day at 5 s ({SAMPLES_PER_DAY_AT_BASE:,} samples)",
            float(history.nbytes),
            "B",
        )
    )
    return rows


def render(rows: Sequence[tuple[str, float, str]]) -> str:
    lines = ["| measurement | median | target |", "|---|---|---|"]
    for what, value, unit in rows:
        if unit == "B":
            target = f"<= {HISTORY_TARGET_BYTES:,} B" if "History" in what else ""
            lines.append(f"| {what} | {value:,.0f} B | {target} |")
        else:
            target = f"<= {SAMPLE_TARGET_US:.0f} us" if "baseline" not in what else "baseline"
            lines.append(f"| {what} | {value:,.1f} us | {target} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro_instruments")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d")
    rows = measure(quick=args.quick)
    print(
        f"instruments micro-benchmark, {started}, CPython {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {psutil.cpu_count()} CPUs"
    )
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
