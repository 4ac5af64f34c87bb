"""Fuzz the newline framer: any bytes, any split, any limit; and the connection core behind it.

Checks: frames hold no newline and never exceed the limit, the kept input never exceeds it
(by more than one read), splitting the stream anywhere gives the same frames as reading it
whole, and the connection core answers any stream with documented replies only.
Run: ``python fuzz/fuzz_framing.py -max_total_time=180`` (see fuzz/README.md).
"""

from __future__ import annotations

import contextlib
import sys


def _instrumented() -> contextlib.AbstractContextManager[object]:
    """Coverage instrumentation for the code under test, only when run by atheris."""
    if __name__ != "__main__":
        return contextlib.nullcontext()  # imported by the test suite
    import atheris

    return atheris.instrument_imports(include=["connscale", "_targets"])


with _instrumented():
    from _targets import drive_lines

    from connscale.core.protocol.framing import TOO_LARGE, LineReader


def split_stream(stream: bytes, cuts: list[int], limit: int) -> tuple[list[bytes], bool]:
    frames: list[bytes] = []
    reader = LineReader(limit)
    position = 0
    for cut in [*cuts, len(stream)]:
        if cut < position:
            continue
        reader.feed(stream[position:cut])
        position = cut
        while (frame := reader.next_frame()) is not None:
            if frame is TOO_LARGE:
                return frames, True
            assert b"\n" not in frame and 0 < len(frame) <= limit, frame
            frames.append(frame)
        # One byte over is allowed: the CR of a CRLF whose LF is in the next read.
        held = len(reader)
        assert held <= limit + 1, "the framer keeps more than the limit"
    return frames, False


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    limit = 1 + data[0] % 64
    cut_count = data[1] % 8
    stream = data[2 + cut_count :]
    cuts = sorted(min(len(stream), b) for b in data[2 : 2 + cut_count])
    whole, whole_too_large = split_stream(stream, [], limit)
    pieces, pieces_too_large = split_stream(stream, cuts, limit)
    assert whole_too_large == pieces_too_large, "splitting the stream changed the outcome"
    assert whole == pieces, "splitting the stream changed the frames"
    drive_lines([stream[i : i + limit] for i in range(0, len(stream), limit)])


def main() -> None:
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
