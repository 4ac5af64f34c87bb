"""PauseRecorder on real and injected collections; GCTuner presets, freeze, pressure, restore."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator

import pytest

from connscale.clock import FakeClock
from connscale.core.monitor_policy import PressureLevel
from connscale.errors import ConfigurationError
from connscale.gc import PRESETS, GCTuner, PauseRecorder


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    gc.enable() if enabled else gc.disable()


def test_records_real_collections() -> None:
    recorder = PauseRecorder()
    with recorder:
        for _ in range(3):
            gc.collect()
        gc.collect(0)
    stats = recorder.statistics()
    assert not recorder.running
    assert stats.collections >= 4
    assert stats.generations[2].collections >= 3
    assert stats.total_pause_s > 0
    assert stats.max_pause_s is not None and stats.p50_pause_s is not None
    assert stats.p50_pause_s <= stats.max_pause_s * 1.01  # histogram precision is 1%
    assert len(stats.recent_pauses_s) == stats.collections
    gc.collect()  # after stop: not recorded
    assert recorder.statistics().collections == stats.collections


def test_statistics_from_injected_pauses_with_a_fake_clock() -> None:
    clock = FakeClock()
    recorder = PauseRecorder(timer=clock, keep_recent=3)
    recorder.start()
    for generation, pause, collected in [(0, 0.001, 5), (0, 0.002, 0), (1, 0.004, 1), (2, 0.1, 7)]:
        recorder.record(generation, pause, collected, uncollectable=1)
    clock.advance(1800.0)  # half an hour
    stats = recorder.statistics()
    recorder.stop()
    assert stats.collections == 4
    assert stats.total_pause_s == pytest.approx(0.107)
    assert stats.max_pause_s == pytest.approx(0.1)
    assert stats.p99_pause_s == pytest.approx(0.1, rel=0.01)
    assert stats.p50_pause_s == pytest.approx(0.002, rel=0.01)
    assert stats.collections_per_hour == pytest.approx(8.0)
    assert stats.objects_collected == 13
    assert stats.uncollectable == 4
    assert [g.collections for g in stats.generations] == [2, 1, 1]
    assert stats.recent_pauses_s == pytest.approx((0.002, 0.004, 0.1))  # bounded
    data = stats.to_dict()
    json.dumps(data)
    assert data["total_pause_ms"] == pytest.approx(107.0)
    assert data["pauses_ms"] == pytest.approx([2.0, 4.0, 100.0])
    assert set(data) >= {"collections", "total_pause_ms", "p50_ms", "p99_ms", "max_ms"}


def test_empty_statistics_mark_missing_figures() -> None:
    stats = PauseRecorder(timer=FakeClock()).statistics()
    assert stats.collections == 0
    assert stats.p50_pause_s is None and stats.max_pause_s is None
    assert stats.collections_per_hour is None  # no time has passed
    assert stats.to_dict()["p99_ms"] is None


def test_callback_pairs_start_and_stop_and_ignores_garbage() -> None:
    clock = FakeClock()
    recorder = PauseRecorder(timer=clock)
    seen: list[tuple[int, float, int]] = []
    recorder.add_listener(lambda g, p, c: seen.append((g, p, c)))

    def broken(generation: int, pause: float, collected: int) -> None:
        raise ZeroDivisionError("listener bug")

    recorder.add_listener(broken)  # a broken listener is contained
    recorder._callback("stop", {"generation": 0})  # stop without start: ignored
    recorder._callback("start", {"generation": 1})
    clock.advance(0.25)
    recorder._callback("stop", {"generation": 1, "collected": 3, "uncollectable": 0})
    recorder.record(7, 0.1, 0)  # impossible generation: ignored
    recorder.record(0, float("nan"), 0)
    assert seen == [(1, 0.25, 3)]
    assert recorder.statistics().collections == 1
    recorder.reset()
    assert recorder.statistics().collections == 0


def test_start_stop_are_idempotent_and_unhook() -> None:
    recorder = PauseRecorder()
    recorder.start()
    recorder.start()
    assert gc.callbacks.count(recorder._callback) == 1
    recorder.stop()
    recorder.stop()
    assert recorder._callback not in gc.callbacks
    with pytest.raises(ConfigurationError):
        PauseRecorder(keep_recent=-1)


def test_tuner_presets_and_restore() -> None:
    gc.set_threshold(123, 4, 5)
    tuner = GCTuner()
    assert tuner.apply("throughput") == PRESETS["throughput"]
    assert gc.get_threshold() == PRESETS["throughput"]
    tuner.apply((900, 11, 12))
    assert gc.get_threshold() == (900, 11, 12)
    tuner.restore()
    assert gc.get_threshold() == (123, 4, 5)
    with pytest.raises(ConfigurationError, match="preset"):
        tuner.apply("fastest")
    with pytest.raises(ConfigurationError):
        tuner.apply((1, 2))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        tuner.apply((1, -2, 3))


def test_freeze_moves_objects_out_and_restore_unfreezes() -> None:
    tuner = GCTuner()
    kept = [object() for _ in range(100)]
    frozen = tuner.freeze()
    assert frozen >= 100
    assert gc.get_freeze_count() == frozen
    tuner.restore()
    assert gc.get_freeze_count() == 0
    del kept


def test_pressure_tightens_and_relaxes_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    tuner = GCTuner()
    tuner.apply("latency")
    base = PRESETS["latency"]
    tuner.on_pressure(PressureLevel.NORMAL, PressureLevel.HIGH, 1.0)
    assert gc.get_threshold() == (base[0] // 2, base[1], base[2] // 2)
    tuner.on_pressure(PressureLevel.HIGH, PressureLevel.CRITICAL, 1.0)
    assert gc.get_threshold() == (base[0] // 4, base[1], base[2] // 4)
    tuner.on_pressure(PressureLevel.CRITICAL, PressureLevel.NORMAL, 1.0)
    assert gc.get_threshold() == base
    tuner.restore()
    assert gc.get_threshold() == (700, 10, 10)


def test_restore_brings_back_disabled_state() -> None:
    gc.disable()
    tuner = GCTuner()
    tuner.apply("throughput")
    gc.enable()
    tuner.restore()
    assert not gc.isenabled()
