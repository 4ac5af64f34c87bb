"""The worker statistics file: one typed record written on SIGUSR1 and read by the bench.

A worker (of ``connscale serve`` or a bench baseline) answers SIGUSR1 by writing
``DIR/worker-<pid>.json``; ``connscale bench`` reads it to learn how many connections each
worker holds and what its collector paused. Both sides use ``WorkerStats``, so a field
renamed on one side cannot silently read as missing on the other, and a file that is not
such a record is refused with a clear error (``read_worker_stats``), never half-trusted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import msgspec

from connscale.errors import MeasurementError
from connscale.gc import GCStatistics

#: A stats file is a few KiB (up to 2,000 recent pauses); anything far larger is not one.
MAX_STATS_BYTES = 1 << 20


class GenerationPauses(msgspec.Struct, kw_only=True, frozen=True):
    """One collector generation's share of the pauses."""

    generation: int
    collections: int
    total_pause_ms: float
    max_pause_ms: float
    collected: int
    uncollectable: int


class WorkerGC(msgspec.Struct, kw_only=True, frozen=True):
    """GC pauses recorded inside one worker; the ``_ms`` keys match the bench's GCStats."""

    collections: int
    total_pause_ms: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    pauses_ms: list[float] = msgspec.field(default_factory=list)
    collections_per_hour: float | None = None
    objects_collected: int = 0
    uncollectable: int = 0
    elapsed_s: float = 0.0
    generations: list[GenerationPauses] = msgspec.field(default_factory=list)

    @classmethod
    def from_statistics(cls, stats: GCStatistics) -> WorkerGC:
        def ms(value: float | None) -> float | None:
            return None if value is None else value * 1000.0

        return cls(
            collections=stats.collections,
            total_pause_ms=stats.total_pause_s * 1000.0,
            p50_ms=ms(stats.p50_pause_s),
            p99_ms=ms(stats.p99_pause_s),
            max_ms=ms(stats.max_pause_s),
            pauses_ms=[pause * 1000.0 for pause in stats.recent_pauses_s],
            collections_per_hour=stats.collections_per_hour,
            objects_collected=stats.objects_collected,
            uncollectable=stats.uncollectable,
            elapsed_s=stats.elapsed_s,
            generations=[
                GenerationPauses(
                    generation=g.generation,
                    collections=g.collections,
                    total_pause_ms=g.total_pause_s * 1000.0,
                    max_pause_ms=g.max_pause_s * 1000.0,
                    collected=g.collected,
                    uncollectable=g.uncollectable,
                )
                for g in stats.generations
            ],
        )


class WorkerStats(msgspec.Struct, kw_only=True, frozen=True):
    """What one worker reports on SIGUSR1."""

    pid: int
    connections: int
    sessions: int
    gc: WorkerGC | None = None  # None where no pause recorder runs
    gc_frozen_objects: int = 0


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WorkerStats)


def stats_path(stats_dir: Path, pid: int) -> Path:
    """Where worker ``pid`` writes its statistics."""
    return stats_dir / f"worker-{pid}.json"


def write_worker_stats(stats_dir: Path, stats: WorkerStats) -> Path:
    """Write ``stats`` atomically: a reader sees the old file or the whole new one."""
    stats_dir.mkdir(parents=True, exist_ok=True)
    path = stats_path(stats_dir, stats.pid)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=stats_dir)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(_encoder.encode(stats))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def decode_worker_stats(data: bytes) -> WorkerStats:
    """Decode a stats file's bytes; MeasurementError for anything that is not a record."""
    if len(data) > MAX_STATS_BYTES:
        raise MeasurementError(f"a worker stats file of {len(data):,} bytes is not one")
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MeasurementError(f"not a worker stats record: {exc}") from None


def read_worker_stats(path: Path) -> WorkerStats:
    """Read one stats file; MeasurementError (naming the file) when unreadable or invalid."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_STATS_BYTES + 1)
    except OSError as exc:
        raise MeasurementError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return decode_worker_stats(data)
    except MeasurementError as exc:
        raise MeasurementError(f"{path}: {exc}") from None


__all__ = [
    "MAX_STATS_BYTES",
    "GenerationPauses",
    "WorkerGC",
    "WorkerStats",
    "decode_worker_stats",
    "read_worker_stats",
    "stats_path",
    "write_worker_stats",
]
