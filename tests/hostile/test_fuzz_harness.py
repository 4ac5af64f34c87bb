"""The atheris targets stay runnable: each replays its seed corpus, which holds every crash
the fuzzers found (``regression-*`` files), without atheris installed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = {
    "fuzz_framing": "framing",
    "fuzz_jsonrpc": "jsonrpc",
    "fuzz_http": "http",
    "fuzz_session_codec": "session",
}


@pytest.mark.parametrize(("module", "corpus"), sorted(TARGETS.items()))
def test_target_replays_its_corpus(module: str, corpus: str) -> None:
    sys.path.insert(0, str(FUZZ))
    try:
        target = importlib.import_module(module)
    finally:
        sys.path.remove(str(FUZZ))
    files = sorted((FUZZ / "corpus" / corpus).iterdir())
    assert files, f"no seeds for {module}"
    for path in files:
        target.test_one_input(path.read_bytes())


def test_every_crash_found_has_a_regression_seed() -> None:
    regressions = sorted(p.name for p in (FUZZ / "corpus").rglob("regression-*"))
    assert len(regressions) >= 4, regressions
