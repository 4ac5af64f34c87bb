"""Newline framing (MCP's stdio framing, here over a socket), sans-I/O and bounded.

The framer keeps no state of its own: the caller holds the incomplete tail of the stream
(``pending``) only while a frame is incomplete, so an idle connection costs nothing here.
A line longer than ``max_frame_bytes`` is reported as soon as that many bytes arrive
without a newline: it is never buffered whole (a 2 GB line costs at most one limit; the
kept tail is at most ``max_frame_bytes + 1``, the extra byte being a CR whose LF is late).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Frames", "split_frames", "turn_cut"]


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
