"""``connscale report RUN.json --format json|markdown|html -o OUT``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "render a RUN.json as JSON, Markdown or a self-contained HTML page with charts"
DESCRIPTION = """\
Render the record of a run (RUN.json, written by `connscale bench`) as a report.

  connscale report RUN.json --format html -o report.html
  connscale report RUN.json --format markdown          (prints to stdout)

Without --format the format follows the suffix of -o (.json, .md, .html), else markdown.
A corrupt or other-version RUN.json is refused with a one-line error (exit 2).
"""

_SUFFIX_FORMATS = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN.json", help="the run record to render")
    parser.add_argument(
        "--format", "-f", choices=("json", "markdown", "html"), help="output format"
    )
    parser.add_argument(
        "-o", "--output", metavar="OUT", help="file to write (default: standard output)"
    )


def run(args: argparse.Namespace) -> int:
    from connscale.report.render import render, write_report
    from connscale.report.schema import read_run

    output = Path(args.output) if args.output else None
    fmt = args.format
    if fmt is None:
        fmt = _SUFFIX_FORMATS.get(output.suffix.lower(), "markdown") if output else "markdown"
    record = read_run(args.run)
    if output is None:
        sys.stdout.write(render(record, fmt))
        return 0
    path = write_report(record, fmt, output)
    print(f"wrote {fmt} report to {path}", file=sys.stderr)
    return 0
