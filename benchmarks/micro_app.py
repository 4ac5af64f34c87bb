"""What the typed App layer costs per tool call, against a raw tool on the same App.

Run: ``python -m benchmarks.micro_app`` (``--quick`` for fewer repeats); also part of
``python -m benchmarks.run_micro``. Each pair is timed in the same run: the typed tool
(arguments validated and converted by msgspec, the return value converted to a result)
against a raw tool registered with ``add_raw_tool`` that reads its arguments dict and builds
the same result dict by hand. Both go through ``App.call_tool``, so the difference is the
typed layer alone. Async tools are driven with ``coroutine.send(None)`` (no event loop), the
same for both sides. Timings are medians of repeats of many calls each, the typed statement
and its baseline timed in alternation within each repeat.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import timeit
from collections.abc import Sequence
from typing import Any

from benchmarks._common import Row, settings
from connscale.app import App, Context
from connscale.core.protocol.surface import ClientInfo

#: The issue's budget: the typed layer adds at most 2 us per call over a raw tool.
BUDGET_NS = 2_000.0


class Call:
    """The least CallContext: what a tool call gets from the engine's call runner."""

    request_id = 1
    progress_token = None
    client = ClientInfo("2025-11-25", "bench", "1")
    log_level = None

    def notify(self, method: str, params: Any = None) -> None:
        pass

    async def request(self, method: str, params: Any = None, *, timeout: Any = None) -> Any:
        return None


def build_app() -> App:
    """An App with each typed tool beside its raw twin."""
    app = App("bench")

    @app.tool()
    def echo(text: str) -> str:
        return text

    @app.raw_tool(input_schema={"type": "object"})
    def raw_echo(arguments: Any) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": arguments["text"]}], "isError": False}

    @app.tool()
    async def async_echo(text: str) -> str:
        return text

    @app.raw_tool(input_schema={"type": "object"})
    async def raw_async_echo(arguments: Any) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": arguments["text"]}], "isError": False}

    @app.tool()
    def context_echo(text: str, ctx: Context) -> str:
        return text

    @app.tool()
    def add(a: int, b: int) -> int:
        return a + b

    @app.raw_tool(input_schema={"type": "object"})
    def raw_add(arguments: Any) -> dict[str, Any]:
        total = arguments["a"] + arguments["b"]
        return {
            "content": [{"type": "text", "text": str(total)}],
            "structuredContent": {"result": total},
            "isError": False,
        }

    return app


def drive(coroutine: Any) -> Any:
    """Run a coroutine that never suspends, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the benchmark's tools do not suspend")


#: (what, statement, baseline, baseline statement)
PAIRS = (
    (
        "typed sync echo `def echo(text: str) -> str`",
        "call('echo', text_args, ctx)",
        "raw sync echo",
        "call('raw_echo', text_args, ctx)",
    ),
    (
        "typed async echo `async def echo(text: str) -> str`",
        "drive(call('async_echo', text_args, ctx))",
        "raw async echo",
        "drive(call('raw_async_echo', text_args, ctx))",
    ),
    (
        "typed sync echo with a Context parameter",
        "call('context_echo', text_args, ctx)",
        "raw sync echo",
        "call('raw_echo', text_args, ctx)",
    ),
    (
        "typed `def add(a: int, b: int) -> int` (structured, output checked)",
        "call('add', add_args, ctx)",
        "raw add, same result dict",
        "call('raw_add', add_args, ctx)",
    ),
)


def paired_median_ns(
    statement: str, baseline: str, namespace: dict[str, Any], *, number: int, repeat: int
) -> tuple[float, float]:
    """Medians (ns per call) of a statement and its baseline, timed in alternation.

    Alternating the two within each repeat keeps a change in the machine's load (it is
    shared) from landing on one side of the comparison only.
    """
    timed = timeit.Timer(statement, globals=namespace)
    base = timeit.Timer(baseline, globals=namespace)
    values, bases = [], []
    for _ in range(repeat):
        values.append(timed.timeit(number) / number * 1e9)
        bases.append(base.timeit(number) / number * 1e9)
    return statistics.median(values), statistics.median(bases)


def measure(quick: bool = False) -> list[Row]:
    """Rows of typed tool calls, each beside its raw baseline from the same run."""
    number, repeat = settings(quick)
    app = build_app()
    namespace = {
        "call": app.call_tool,
        "drive": drive,
        "ctx": Call(),
        "text_args": {"text": "hello"},
        "add_args": {"a": 2, "b": 3},
    }
    rows = []
    for what, statement, baseline, baseline_statement in PAIRS:
        value, base = paired_median_ns(
            statement, baseline_statement, namespace, number=number, repeat=repeat
        )
        target = f"{(value - base) / 1000:+.2f} us (budget +{BUDGET_NS / 1000:.0f} us)"
        rows.append(Row("app", what, value, "ns", baseline, base, target))
    return rows


def render(rows: Sequence[Row]) -> str:
    lines = [
        "| measured | median | baseline (same run) | baseline median | ratio | difference |",
        "|---|---:|---|---:|---:|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"| {row.what} | {row.value:,.0f} ns | {row.baseline} | "
            f"{row.baseline_value or 0:,.0f} ns | {ratio} | {row.target} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro_app", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args(argv)
    rows = measure(quick=args.quick)
    print(f"App.call_tool micro-benchmark, CPython {platform.python_version()}")
    print(render(rows))
    over = [row for row in rows if row.value - (row.baseline_value or 0) > BUDGET_NS]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
