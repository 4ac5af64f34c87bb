"""Run the official MCP conformance suite's server scenarios against connscale.

``make conformance`` runs this: it installs the suite at a pinned version (and, when the
machine's Node.js is older than 22, a Node 22 binary, both from the npm registry, into
``.conformance/``), serves ``examples/everything.py:app`` over Streamable HTTP on each engine,
runs every server scenario of both protocol eras against it, and prints one line per scenario.
Exit code 0 when every scenario passes, 1 otherwise, 2 when the suite cannot be set up.

    python scripts/conformance.py                      # both engines, both eras
    python scripts/conformance.py --engine epoll --era 2025-11-25
    python scripts/conformance.py --scenario tools-call-with-progress --verbose
    python scripts/conformance.py --markdown docs/CONFORMANCE.md   # the table of a full run

``--markdown FILE`` writes which protocol revision each scenario tests (the suite's own tags
for it, and the revisions it ran at here) with the result on each engine, the command, the
suite version and the date.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".conformance"
SUITE_VERSION = "0.2.0-alpha.12"  # the first release with the 2026-07-28 scenarios
NODE_MAJOR = 22
ERAS = ("2025-11-25", "2026-07-28")
ENGINES = ("epoll", "asyncio")
APP = "examples/everything.py:app"
_SUMMARY = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed")
_LISTED = re.compile(r"^- ([A-Za-z0-9._-]+) \[([A-Za-z0-9.,_ -]*)\]$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Outcome(NamedTuple):
    """One scenario run at one revision on one engine."""

    engine: str
    era: str
    scenario: str
    ok: bool
    passed: int
    failed: int


class SetupError(Exception):
    """The suite or Node.js could not be installed."""


def _node_major(node: str) -> int:
    try:
        output = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.match(r"v(\d+)", output.strip())
    return int(match.group(1)) if match else 0


def _npm(*arguments: str, prefix: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError("npm is not installed: it is needed to install the conformance suite")
    prefix.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise SetupError(f"npm install {' '.join(arguments)} failed: {' / '.join(tail)}")


def ensure_node() -> str:
    """A Node.js >= 22 binary: the machine's, or one installed from the npm registry."""
    system = shutil.which("node")
    if system and _node_major(system) >= NODE_MAJOR:
        return system
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    if arch is None:
        raise SetupError(f"no Node.js {NODE_MAJOR} package for this machine ({platform.machine()})")
    package = f"node-linux-{arch}"
    node = WORK / "node" / "node_modules" / package / "bin" / "node"
    if not node.exists():
        print(f"installing Node.js {NODE_MAJOR} ({package}) into {node.parent} ...", flush=True)
        # The `node` package's install script is refused by recent npm; the platform package
        # carries the binary itself.
        _npm(f"{package}@{NODE_MAJOR}", prefix=WORK / "node")
    if _node_major(str(node)) < NODE_MAJOR:
        raise SetupError(f"the installed Node.js at {node} does not run")
    return str(node)


def ensure_suite() -> Path:
    cli = WORK / "suite" / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist"
    cli = cli / "index.js"
    marker = WORK / "suite" / f".version-{SUITE_VERSION}"
    if not cli.exists() or not marker.exists():
        print(f"installing @modelcontextprotocol/conformance@{SUITE_VERSION} ...", flush=True)
        _npm(f"@modelcontextprotocol/conformance@{SUITE_VERSION}", prefix=WORK / "suite")
        marker.touch()
    return cli


def serve(engine: str, ready: Path) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connscale",
            "serve",
            "--transport",
            "http",
            "--engine",
            engine,
            "--port",
            "0",
            "--app",
            APP,
            "--ready-file",
            str(ready),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None:
            error = (process.stderr.read() if process.stderr else b"").decode().strip()
            raise SetupError(f"connscale serve exited: {error.splitlines()[-1:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise SetupError("connscale serve did not become ready in 60 s")
        time.sleep(0.05)
    import json

    return process, int(json.loads(ready.read_text())["port"])


def parse_summary(output: str) -> list[tuple[str, bool, int, int]]:
    """(scenario, passed?, checks passed, checks failed) from the suite's summary lines."""
    rows = []
    for line in _ANSI.sub("", output).splitlines():
        match = _SUMMARY.match(line.strip())
        if match:
            mark, name, passed, failed = match.groups()
            rows.append((name, mark == "✓", int(passed), int(failed)))
    return rows


def parse_listing(output: str) -> dict[str, tuple[str, ...]]:
    """Scenario -> the suite's tags for it (revisions, or ``extension``) from ``list``."""
    tags = {}
    for line in _ANSI.sub("", output).splitlines():
        match = _LISTED.match(line.strip())
        if match:
            name, listed = match.groups()
            tags[name] = tuple(tag.strip() for tag in listed.split(",") if tag.strip())
    return tags


def list_scenarios(node: str, cli: Path) -> dict[str, tuple[str, ...]]:
    command = [node, str(cli), "list", "--server"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    return parse_listing(result.stdout)


def run_leg(
    node: str, cli: Path, url: str, era: str, *, scenario: str | None, verbose: bool
) -> list[tuple[str, bool, int, int]]:
    command = [node, str(cli), "server", "--url", url, "--spec-version", era]
    command += ["--scenario", scenario] if scenario else ["--suite", "all"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    output = _ANSI.sub("", result.stdout + result.stderr)
    if verbose:
        print(output)
    rows = parse_summary(output)
    if scenario and not rows:  # a single scenario prints no summary: read its verdict
        passed = "FAILURE" not in output and result.returncode == 0
        rows.append((scenario, passed, output.count("SUCCESS"), output.count("FAILURE")))
    return rows


def _checks(count: int) -> str:
    return f"{count} check" if count == 1 else f"{count} checks"


def markdown_table(
    outcomes: Sequence[Outcome],
    tags: dict[str, tuple[str, ...]],
    *,
    command: str,
    date: str,
    engines: Sequence[str] = ENGINES,
) -> str:
    """Which revision each scenario tests and its result on each engine, as Markdown."""
    runs: dict[str, dict[tuple[str, str], Outcome]] = {}
    for outcome in outcomes:
        runs.setdefault(outcome.scenario, {})[(outcome.engine, outcome.era)] = outcome
    names = list(tags) + sorted(set(runs) - set(tags))
    passed = sum(o.ok for o in outcomes)
    lines = [
        "# Conformance",
        "",
        "The official MCP conformance suite's server scenarios against "
        f"`connscale serve --transport http --app {APP}`, on each engine. A scenario runs at "
        "each protocol revision the run asks for (`--spec-version`) that the suite tags it "
        "with: 2025-11-25 is the handshake era (`initialize`, sessions), 2026-07-28 the "
        "stateless one (`server/discover`, the per-request envelope, `subscriptions/listen`). "
        "Extension scenarios (tasks, skills) test optional extensions, not a revision: a "
        "run at a revision leaves them out. Written by "
        "`scripts/conformance.py --markdown` from the run it describes; `make conformance` "
        "runs the same scenarios.",
        "",
        f"- Command: `{command}`",
        f"- Suite: `@modelcontextprotocol/conformance@{SUITE_VERSION}`",
        f"- Date: {date}",
        f"- Result: {passed} of {len(outcomes)} scenario runs passed",
        "",
        "| scenario | revisions the suite tags it with | revision(s) it runs at here | "
        + " | ".join(engines)
        + " |",
        "|---|---|---|" + "---|" * len(engines),
    ]
    for name in names:
        ran = runs.get(name, {})
        eras = sorted({era for _, era in ran})
        cells = []
        for engine in engines:
            verdicts = []
            for era in eras:
                found = ran.get((engine, era))
                if found is None:
                    verdicts.append(f"{era}: not run")
                elif found.ok and not found.passed:
                    verdicts.append(f"{era}: pass (no scored check: informational only)")
                elif found.ok:
                    verdicts.append(f"{era}: pass ({_checks(found.passed)})")
                else:
                    total = _checks(found.passed + found.failed)
                    verdicts.append(f"{era}: **FAIL** ({found.failed} of {total} failed)")
            cells.append("<br>".join(verdicts) or "not run")
        listed = ", ".join(tags.get(name, ())) or "-"
        where = ", ".join(eras) or (
            "not run: an extension, not a revision"
            if "extension" in tags.get(name, ())
            else "not run"
        )
        lines.append(f"| `{name}` | {listed} | {where} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINES, action="append", help="default: both")
    parser.add_argument("--era", choices=ERAS, action="append", help="default: both")
    parser.add_argument("--scenario", help="run one scenario only")
    parser.add_argument("--verbose", action="store_true", help="print the suite's own output")
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="write a Markdown table: each scenario's revisions and its result per engine",
    )
    args = parser.parse_args(argv)
    try:
        node = ensure_node()
        cli = ensure_suite()
    except SetupError as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return 2
    outcomes: list[Outcome] = []
    engines = args.engine or list(ENGINES)
    for engine in engines:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                process, port = serve(engine, Path(scratch) / "ready.json")
            except SetupError as exc:
                print(f"conformance: error: {exc}", file=sys.stderr)
                return 2
            try:
                url = f"http://127.0.0.1:{port}/mcp"
                for era in args.era or ERAS:
                    for name, ok, passed, failed in run_leg(
                        node, cli, url, era, scenario=args.scenario, verbose=args.verbose
                    ):
                        outcomes.append(Outcome(engine, era, name, ok, passed, failed))
                        verdict = "PASS" if ok else "FAIL"
                        print(
                            f"{verdict}  {engine:7}  {era}  {name}  "
                            f"({passed} checks passed, {failed} failed)",
                            flush=True,
                        )
            finally:
                process.terminate()
                process.wait(15)
    failures = sum(not outcome.ok for outcome in outcomes)
    total = len(outcomes)
    print(f"{total - failures} of {total} scenario runs passed (suite {SUITE_VERSION})")
    if args.markdown is not None:
        command = "python scripts/conformance.py " + " ".join(argv or sys.argv[1:])
        tags = {} if args.scenario else list_scenarios(node, cli)
        date = datetime.now(UTC).date().isoformat()
        table = markdown_table(outcomes, tags, command=command.strip(), date=date, engines=engines)
        args.markdown.write_text(table, encoding="utf-8")
        print(f"wrote {args.markdown}")
    return 1 if failures or not total else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())
