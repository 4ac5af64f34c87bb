"""Newline-delimited frames of one connection, through the core's incremental LineReader.

A connection keeps a ``LineReader`` only while it holds part of a line: the usual read
ends on a frame boundary, and an idle held connection then carries no reader at all.
"""

from __future__ import annotations

from connscale.core.protocol.framing import TOO_LARGE, LineReader
from connscale.loadgen.protocols.base import MAX_MESSAGE_BYTES, Conn


def read_lines(conn: Conn, data: bytes) -> list[bytes] | None:
    """Complete lines in ``data`` (after what ``conn`` held); None when a line is too long."""
    reader = conn.parser
    if not isinstance(reader, LineReader):
        reader = LineReader(MAX_MESSAGE_BYTES)
    reader.feed(data)
    lines: list[bytes] = []
    while True:
        frame = reader.next_frame()
        if frame is None:
            break
        if frame is TOO_LARGE:
            conn.parser = None
            return None
        lines.append(frame)
    conn.parser = reader if len(reader) else None
    return lines


__all__ = ["read_lines"]
