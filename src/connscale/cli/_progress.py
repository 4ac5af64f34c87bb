"""Progress on stderr that never shares a line with what comes after it.

On a terminal, one line is redrawn in place (``\\r``) and ended with a newline before
anything else is printed; in a pipe or a log, progress is whole lines, at most one a
``min_interval``, so an error message always starts on a line of its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


class LineProgress:
    """``update(text)`` shows progress; ``line(text)`` prints a whole line; ``close()`` ends."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval
        self._clock = clock
        self._open = False  # a redrawn line without its newline yet
        self._last = -float("inf")
        self._last_text = ""

    def update(self, text: str, *, force: bool = False) -> None:
        if self.live:
            self.stream.write("\r" + text + "\x1b[K")
            self._open = True
        else:
            now = self._clock()
            if text == self._last_text or (not force and now - self._last < self.min_interval):
                return
            self._last = now
            self.stream.write(text + "\n")
        self._last_text = text
        self.stream.flush()

    def line(self, text: str) -> None:
        """A whole line of its own (a plateau measured, a phase started)."""
        self.end_line()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end_line(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def close(self) -> None:
        self.end_line()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["LineProgress"]
