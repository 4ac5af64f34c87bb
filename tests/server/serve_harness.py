"""Start ``connscale serve`` as a subprocess and wait for its ready file (bounded)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connscale.testing import served


@contextlib.contextmanager
def serve(
    tmp_path: Path, *arguments: str, timeout: float = 30.0
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    with served(tmp_path, arguments, timeout=timeout) as running:
        yield running
