"""The tests' shared helpers live in tests/support.py; make it importable from every folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest

from connscale._hot_path import mode, stale_modules


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test an edit that a compiled extension built before it would hide."""
    stale = stale_modules()
    if stale:
        pytest.exit(
            "compiled extensions are older than their sources ("
            + ", ".join(stale)
            + "): run `make compile` to rebuild them, or `make interpreted` to remove them",
            returncode=4,
        )


def pytest_report_header() -> str:
    return "connscale hot path: " + mode()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say it at the end too: `pytest -q` (make test) shows no header."""
    terminalreporter.write_line(pytest_report_header())
