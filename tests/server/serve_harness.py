"""Start ``connscale serve`` as a subprocess and wait for its ready file (bounded)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def serve(
    tmp_path: Path, *arguments: str, timeout: float = 30.0
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    ready_file = tmp_path / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "connscale", "serve", "--ready-file", str(ready_file), *arguments],
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready_file.exists():
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise AssertionError("server did not become ready in time")
            time.sleep(0.02)
        yield process, json.loads(ready_file.read_text())
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)
