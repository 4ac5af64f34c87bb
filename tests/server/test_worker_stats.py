"""The worker stats record: one typed file shared by the worker and the bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.errors import MeasurementError
from connscale.gc import PauseRecorder
from connscale.server.stats import (
    MAX_STATS_BYTES,
    WorkerGC,
    WorkerStats,
    decode_worker_stats,
    read_worker_stats,
    write_worker_stats,
)


def test_a_record_round_trips_through_its_file(tmp_path: Path) -> None:
    recorder = PauseRecorder()
    recorder.start()
    try:
        import gc

        gc.collect()
    finally:
        recorder.stop()
    stats = WorkerStats(
        pid=42,
        connections=7,
        sessions=5,
        gc=WorkerGC.from_statistics(recorder.statistics()),
        gc_frozen_objects=3,
    )
    path = write_worker_stats(tmp_path / "stats", stats)
    assert path.name == "worker-42.json"
    assert read_worker_stats(path) == stats
    raw = json.loads(path.read_text())
    assert set(raw) == {"pid", "connections", "sessions", "gc", "gc_frozen_objects"}
    assert raw["gc"]["collections"] >= 1 and raw["gc"]["pauses_ms"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_a_wrong_field_type_or_a_missing_field_is_refused() -> None:
    with pytest.raises(MeasurementError, match="pid"):
        decode_worker_stats(b'{"pid": "seven", "connections": 1, "sessions": 1}')
    with pytest.raises(MeasurementError, match="sessions"):
        decode_worker_stats(b'{"pid": 1, "connections": 1}')
    with pytest.raises(MeasurementError, match="not one"):
        decode_worker_stats(b" " * (MAX_STATS_BYTES + 1))


def test_an_unreadable_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match=r"worker-1\.json"):
        read_worker_stats(tmp_path / "worker-1.json")
    bad = tmp_path / "worker-2.json"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(MeasurementError, match=r"worker-2\.json"):
        read_worker_stats(bad)


@given(st.binary(max_size=300))
def test_garbage_is_a_measurement_error_and_nothing_else(data: bytes) -> None:
    try:
        stats = decode_worker_stats(data)
    except MeasurementError:
        return
    assert isinstance(stats, WorkerStats)
