"""The pytest gate's leak threshold: how often clean code is called leaky, how often a real
24-byte-per-call leak is caught, at the default threshold and at the old one (64 B).

    python -m benchmarks.gate_false_alarms [--runs N]

Each run is one ``leak_check`` (30 calls after 5 warm-up calls, the gate's defaults) of a
callable: several clean shapes (temporaries, dicts, strings, an async function, a bounded
cache) and leaks of 24 B per call (a float kept in a list), 16 B (an ``object()``) and 1 KiB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
from collections.abc import Callable

from connscale.profile import DEFAULT_CALL_LEAK_THRESHOLD, leak_check

OLD_THRESHOLD = 64.0


def _clean_shapes() -> dict[str, Callable[[], object]]:
    bounded: collections.deque[object] = collections.deque(maxlen=8)

    def temporaries() -> None:
        scratch = [bytearray(256) for _ in range(20)]
        {"k": scratch, "v": str(len(scratch))}.clear()

    def dict_and_str() -> str:
        return ",".join(f"{k}={v}" for k, v in {"a": 1, "b": 2.5, "c": None}.items())

    def bounded_cache() -> None:
        bounded.append(object())

    async def async_clean() -> int:
        await asyncio.sleep(0)
        return len([object() for _ in range(10)])

    return {
        "temporaries": temporaries,
        "dict and str": dict_and_str,
        "bounded deque": bounded_cache,
        "async function": async_clean,
    }


def _leaks() -> dict[str, Callable[[], object]]:
    kept: list[object] = []
    floats: list[float] = []
    kept_big: list[object] = []

    def float_leak() -> None:
        floats.append(len(floats) * 1.5)  # a new 24-byte float object kept per call

    return {
        "24 B per call (a float kept in a list)": float_leak,
        "16 B per call (object() kept in a list)": lambda: kept.append(object()),
        "1 KiB per call": lambda: kept_big.append(bytearray(1000)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gate_false_alarms")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"runs per row: {args.runs}; threshold now {DEFAULT_CALL_LEAK_THRESHOLD:g} B/call\n")
    print(
        f"| callable | kind | flagged at {DEFAULT_CALL_LEAK_THRESHOLD:g} B | flagged at "
        f"{OLD_THRESHOLD:g} B | median slope B/call |"
    )
    print("|---|---|---:|---:|---:|")
    rows = [(name, "clean", f) for name, f in _clean_shapes().items()]
    rows += [(name, "leak", f) for name, f in _leaks().items()]
    for name, kind, func in rows:
        flagged_now = flagged_old = 0
        slopes = []
        for _ in range(args.runs):
            result = leak_check(func)
            slopes.append(result.slope)
            flagged_now += result.leak
            low = result.slope_low
            flagged_old += bool(low > 0 and result.slope > OLD_THRESHOLD)
        slopes.sort()
        print(
            f"| {name} | {kind} | {flagged_now}/{args.runs} | {flagged_old}/{args.runs} | "
            f"{slopes[len(slopes) // 2]:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
