"""A user's own App, as a file: an async tool that awaits I/O and a sync tool.

Served by tests/server/test_custom_app.py with ``connscale serve --app <this file>:app``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from connscale.app import App

app = App("custom-notes", version="1.2.3")
NOTES = Path(__file__).with_name("custom_app_notes.txt")


@app.tool()
async def read_note(line: int) -> str:
    """Line ``line`` of the notes file, read in a thread while the worker serves others."""
    text = await asyncio.to_thread(NOTES.read_text, encoding="utf-8")
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        raise ValueError(f"no line {line}: the notes have {len(lines)}")
    return lines[line]


@app.tool()
def add(a: int, b: int) -> int:
    """The sum of two integers (runs inline, no task)."""
    return a + b


@app.tool()
def worker_pid() -> int:
    """The pid of the worker that served this call."""
    return os.getpid()
