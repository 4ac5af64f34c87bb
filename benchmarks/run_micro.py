"""Run every micro-benchmark (``benchmarks/micro_*.py``), print a table, write Markdown.

``python -m benchmarks.run_micro [--quick] [--markdown PATH] [--only NAME]``

Each module has ``measure(quick) -> rows``; a row is a ``benchmarks._common.Row`` or a
``(what, value, unit)`` tuple. Timings are medians of repeated runs and every figure sits
next to the baseline measured in the same run: compare ratios, the machine is shared.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import io
import pkgutil
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import Row


def discover() -> list[str]:
    """Names of the micro-benchmark modules, sorted."""
    here = Path(__file__).resolve().parent
    return sorted(
        f"benchmarks.{info.name}"
        for info in pkgutil.iter_modules([str(here)])
        if info.name.startswith("micro_")
    )


def _as_row(module: str, item: Any) -> Row:
    if isinstance(item, Row):
        return item
    what, value, unit = item
    return Row(module.removeprefix("benchmarks.micro_"), what, float(value), unit)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    return f"{value:,.0f} {unit}" if abs(value) >= 100 or unit == "B" else f"{value:,.2f} {unit}"


def render_markdown(rows: Sequence[Row], command: str) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {sys.platform}, {_cores()} cores, "
        f"CPython {platform.python_version()}  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
        "| group | measured | value | baseline (same run) | baseline value | ratio | target |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"| {row.group} | {row.what} | {_fmt(row.value, row.unit)} | {row.baseline} | "
            f"{_fmt(row.baseline_value, row.unit)} | {ratio} | {row.target} |"
        )
    return "\n".join(lines) + "\n"


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def render_text(rows: Sequence[Row]) -> str:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency; plain text otherwise
        return render_markdown(rows, "")
    table = Table("group", "measured", "value", "baseline", "baseline value", "ratio", "target")
    for row in rows:
        table.add_row(
            row.group,
            row.what,
            _fmt(row.value, row.unit),
            row.baseline,
            _fmt(row.baseline_value, row.unit),
            "" if row.ratio is None else f"{row.ratio:.2f}x",
            row.target,
        )
    console = Console(width=160, file=io.StringIO())
    console.print(table)
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_micro", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer entries and repeats")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--only", action="append", help="run only these modules (micro_NAME)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in discover():
        short = name.removeprefix("benchmarks.")
        if args.only and short not in args.only and short.removeprefix("micro_") not in args.only:
            continue
        module = importlib.import_module(name)
        measure = getattr(module, "measure", None)
        if measure is None:
            continue
        print(f"running {short} ...", file=sys.stderr, flush=True)
        rows.extend(_as_row(name, item) for item in measure(quick=args.quick))
    print(render_text(rows))
    if args.markdown:
        command = "python -m benchmarks.run_micro" + (" --quick" if args.quick else "")
        args.markdown.write_text(render_markdown(rows, command), encoding="utf-8")
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
