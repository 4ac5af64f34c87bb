"""Framing is linear: a long line trickled in small reads costs CPU in proportion to its size.

The connection core frames newline-delimited JSON with a ``LineReader`` that remembers how far
it has searched. A 1 MiB line fed in 64-byte reads is searched once, byte by byte; the old
framing searched the whole pending buffer again on every read (quadratic: ~0.6 s for 1 MiB).

Measured through the real connection core (``ConnectionCore.receive``, fake wire), CPU time
(``time.process_time``), median of repeats. The baseline is the same 256 KiB line fed the
same way in the same run: the ratio for 4x the bytes must stay near 4 (target <= 4.5x), and
1 MiB must take under 50 ms.

``python -m benchmarks.micro_framing``  (also part of ``python -m benchmarks.run_micro``)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from benchmarks._common import Row

PIECE = 64


def _core() -> tuple[object, object]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
    from _targets import make_core

    from connscale.core.protocol.limits import ServerLimits

    core, wire = make_core()
    # A limit that admits the longest line measured, so every byte is searched.
    core.limits = ServerLimits(max_frame_bytes=2 << 20)
    return core, wire


def trickle_seconds(size: int) -> float:
    """CPU seconds to frame one ``size``-byte line fed in 64-byte reads, newline last."""
    from connscale.core.protocol.framing import LineReader

    core, _wire = _core()
    core.open(0)  # type: ignore[attr-defined]
    piece = b"x" * PIECE
    receive = core.receive  # type: ignore[attr-defined]
    started = time.process_time()
    for _ in range(size // PIECE):
        receive(0, piece)
    receive(0, b"\n")
    elapsed = time.process_time() - started
    reader = core._line_readers.get(0)  # type: ignore[attr-defined]
    assert reader is None or isinstance(reader, LineReader)
    return elapsed


def measure(quick: bool = False) -> list[Row]:
    repeat = 3 if quick else 7
    small = statistics.median(trickle_seconds(256 << 10) for _ in range(repeat))
    large = statistics.median(trickle_seconds(1 << 20) for _ in range(repeat))
    return [
        Row(
            "framing",
            "1 MiB line in 64 B reads, CPU",
            large * 1e3,
            "ms",
            "256 KiB line, same reads",
            small * 1e3,
            "<= 4.5x and < 50 ms",
        )
    ]


if __name__ == "__main__":
    for row in measure():
        print(
            f"{row.what}: {row.value:.1f} {row.unit}; {row.baseline}: "
            f"{row.baseline_value:.1f} {row.unit}; ratio {row.ratio:.2f}x ({row.target})"
        )
