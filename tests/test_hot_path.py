"""The hot-path module list, and the guard against compiled extensions older than their sources."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connscale import _hot_path
from connscale._hot_path import HOT_PATH_MODULES, compiled_modules, source_file, stale_modules

ROOT = Path(__file__).resolve().parents[1]


def test_every_hot_path_module_has_its_source_here() -> None:
    for module in HOT_PATH_MODULES:
        assert source_file(module).is_file(), module
        assert importlib.import_module(module).__name__ == module


def test_compiled_modules_are_the_ones_imported_from_extensions() -> None:
    imported = {
        module
        for module in HOT_PATH_MODULES
        if not str(importlib.import_module(module).__file__).endswith(".py")
    }
    assert set(compiled_modules()) == imported


def test_the_mode_names_each_way_the_hot_path_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    everything = list(HOT_PATH_MODULES)
    for compiled, said in [
        (everything, f"compiled, {len(everything)} modules"),
        ([], "interpreted"),
        (everything[:2], f"partly compiled, 2 of {len(everything)} modules"),
    ]:
        monkeypatch.setattr(_hot_path, "compiled_modules", lambda found=compiled: found)
        assert _hot_path.mode() == said


def test_an_extension_older_than_its_source_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "connection.py"
    source.write_text("x = 1\n")
    built = tmp_path / "connection.cpython-311-x86_64-linux-gnu.so"
    built.write_bytes(b"")
    monkeypatch.setattr(_hot_path, "source_file", lambda module: source)
    os.utime(built, (1_000, 1_000))
    os.utime(source, (2_000, 2_000))
    assert stale_modules() == list(HOT_PATH_MODULES)  # every name maps to the one file here
    os.utime(built, (3_000, 3_000))
    assert stale_modules() == []
    built.unlink()
    assert stale_modules() == []  # interpreted: nothing to be stale


def test_the_build_script_lists_the_same_modules() -> None:
    listed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compile_hot_path.py"), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed == [
        "src/" + str(source_file(module).relative_to(ROOT / "src")) for module in HOT_PATH_MODULES
    ]
