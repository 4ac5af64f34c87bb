"""Progress lines never share a line with what is printed after them."""

from __future__ import annotations

import io

from connscale.cli._progress import LineProgress
from connscale.clock import FakeClock


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_whole_lines_at_most_one_per_interval() -> None:
    stream = io.StringIO()
    clock = FakeClock()
    progress = LineProgress(stream, min_interval=1.0, clock=clock)
    progress.update("10/100")
    progress.update("20/100")  # within the interval: not printed
    clock.advance(1.5)
    progress.update("30/100")
    progress.close()
    stream.write("connscale loadgen: error: boom\n")
    assert stream.getvalue().splitlines() == ["10/100", "30/100", "connscale loadgen: error: boom"]


def test_a_terminal_line_is_ended_before_anything_else() -> None:
    stream = _Terminal()
    with LineProgress(stream) as progress:
        progress.update("  10/100 established")
        progress.update("  20/100 established")
    stream.write("connscale loadgen: error: boom\n")
    last = stream.getvalue().split("\r")[-1]
    assert last.endswith("\nconnscale loadgen: error: boom\n")
    assert last.startswith("  20/100 established")
