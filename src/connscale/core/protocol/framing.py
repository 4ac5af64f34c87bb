"""Newline framing (MCP's stdio framing, also over TCP), sans-I/O, bounded and incremental.

``LineReader`` holds the unconsumed input of one stream and remembers how far it has
searched it for a newline, so a long line trickled in small reads is searched once, byte
by byte, never from its start again: the cost of framing is linear in the bytes received
(after h11's ``ReceiveBuffer``). A reader exists only while a stream has input that is not
a whole frame yet; a stream whose reads end on a frame boundary needs no reader at all
(``split_lines`` frames such reads without one).

A line longer than ``max_frame_bytes`` is reported as soon as that many bytes arrive
without a newline: it is never buffered whole. The kept input is at most
``max_frame_bytes + 1`` bytes past the last frame (the extra byte being a CR whose LF is
late); a reader never holds more than one frame limit of unsearched data plus one read.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["TOO_LARGE", "Frames", "LineReader", "frame_end", "split_frames", "turn_cut"]

#: What ``LineReader.next_frame`` returns for a line over the limit (then the stream is done).
TOO_LARGE: Final = b"\x00too-large"


def frame_end(data: bytes | bytearray, start: int, newline: int) -> int:
    """Where the frame ending at ``newline`` stops: before a ``\\r`` that precedes it."""
    if newline > start and data[newline - 1] == 13:  # b"\r"
        return newline - 1
    return newline


class LineReader:
    """Newline-delimited frames out of a byte stream; ``\\r\\n`` accepted, empty lines skipped.

    ``feed`` bytes as they arrive; ``next_frame`` returns each complete frame once, None
    while the next one is incomplete, or ``TOO_LARGE`` (after which the reader yields
    nothing more: the stream cannot be resynchronised safely).
    """

    __slots__ = ("_buffer", "_searched", "_start", "_too_large", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int, initial: bytes | bytearray = b"") -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray(initial)
        self._start = 0  # the first byte not yet returned in a frame
        self._searched = 0  # bytes before this index hold no newline past _start
        self._too_large = False

    def __len__(self) -> int:
        """Bytes held that are not yet part of a returned frame."""
        return len(self._buffer) - self._start

    @property
    def too_large(self) -> bool:
        return self._too_large

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._too_large:
            return
        buffer = self._buffer
        start = self._start
        # Drop consumed bytes once they are the larger part: amortised O(1) per byte.
        if start and start >= len(buffer) - start:
            del buffer[:start]
            self._searched -= start
            self._start = 0
        buffer += data

    def next_frame(self) -> bytes | None:
        """The next complete frame, None when more bytes are needed, or ``TOO_LARGE``."""
        if self._too_large:
            return None
        buffer = self._buffer
        limit = self.max_frame_bytes
        while True:
            start = self._start
            newline = buffer.find(b"\n", self._searched)
            if newline < 0:
                self._searched = len(buffer)
                held = len(buffer) - start
                # One byte over the limit is allowed when it is the CR of a CRLF cut
                # between two reads (found by fuzzing: a line of exactly the limit was refused).
                if held > limit and not (held == limit + 1 and buffer[-1] == 13):
                    return self._refuse()
                return None
            stop = frame_end(buffer, start, newline)
            self._start = self._searched = newline + 1
            if stop - start > limit:
                return self._refuse()
            if stop > start:
                return bytes(buffer[start:stop])

    def _refuse(self) -> bytes:
        self._too_large = True
        self._buffer = bytearray()
        self._start = self._searched = 0
        return TOO_LARGE

    def pending_frames(self) -> bool:
        """Whether a complete frame is already buffered (without consuming it)."""
        return not self._too_large and self._buffer.find(b"\n", self._start) >= 0

    def take(self) -> bytearray:
        """The unconsumed bytes, leaving the reader empty."""
        rest = self._buffer[self._start :]
        self._buffer = bytearray()
        self._start = self._searched = 0
        return rest


# Legacy whole-buffer framing, kept until the engines move to LineReader.


class Frames(NamedTuple):
    """Complete frames found, the incomplete tail to keep, and whether a frame was too long."""

    frames: list[bytes]
    tail: bytearray | None
    too_large: bool


def split_frames(
    pending: bytearray | None, data: bytes | bytearray, max_frame_bytes: int
) -> Frames:
    """Split ``pending + data`` into newline-terminated frames (``\\r\\n`` accepted).

    Empty lines are skipped. ``too_large`` is set at the first frame, complete or not,
    over ``max_frame_bytes``; frames before it are returned, nothing after it is.
    """
    if pending:
        pending += data
        buffer: bytes | bytearray = pending
    else:
        buffer = data
    view = memoryview(buffer)
    frames: list[bytes] = []
    start = 0
    end = len(view)
    while start < end:
        newline = buffer.find(b"\n", start)
        if newline < 0:
            break
        stop = newline
        if stop > start and view[stop - 1] == 13:  # b"\r"
            stop -= 1
        if stop - start > max_frame_bytes:
            return Frames(frames, None, True)
        if stop > start:
            frames.append(bytes(view[start:stop]))
        start = newline + 1
    if start >= end:
        return Frames(frames, None, False)
    # A tail may hold one byte more than the limit when that byte is the CR of a CRLF cut
    # between two reads (found by fuzzing: a line of exactly the limit was refused).
    if end - start > max_frame_bytes and not (
        end - start == max_frame_bytes + 1 and view[end - 1] == 13
    ):
        return Frames(frames, None, True)
    # Copy the tail: the caller's data buffer is reused for the next read.
    return Frames(frames, bytearray(view[start:end]), False)


def turn_cut(data: bytes | bytearray, offset: int, frames_per_turn: int) -> int | None:
    """Where a turn of ``frames_per_turn`` frames ends in ``data[offset:]``, when more
    complete frames follow it; None when the rest fits in one turn.

    Engines serve a pipelining client one turn at a time, so it cannot starve the others.
    """
    cut = offset
    for _ in range(frames_per_turn):
        newline = data.find(b"\n", cut)
        if newline < 0:
            return None
        cut = newline + 1
    return cut if data.find(b"\n", cut) >= 0 else None
