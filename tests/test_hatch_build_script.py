"""The wheel's build hook (scripts/hatch_build.py): pure by default, compiled when asked."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from support import load_file

ROOT = Path(__file__).resolve().parents[1]


hook = load_file("hatch_build", "scripts/hatch_build.py")


def test_the_wheel_target_runs_the_hook() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    custom = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]
    assert (ROOT / custom["path"]).resolve() == ROOT / "scripts/hatch_build.py"


def test_only_an_asked_for_non_editable_build_compiles() -> None:
    assert hook.wanted("standard", {hook.SWITCH: "1"})
    assert not hook.wanted("editable", {hook.SWITCH: "1"})  # runs the tree: make compile
    assert not hook.wanted("standard", {})
    assert not hook.wanted("standard", {hook.SWITCH: "0"})
    assert not hook.wanted("standard", {hook.SWITCH: "yes"})


def test_extensions_keep_their_place_under_src(tmp_path: Path) -> None:
    package = tmp_path / "connscale" / "core"
    package.mkdir(parents=True)
    module = package / "connection.cpython-311-x86_64-linux-gnu.so"
    runtime = tmp_path / "0abc__mypyc.cpython-311-x86_64-linux-gnu.so"
    for path in (module, runtime):
        path.write_bytes(b"\x7fELF")
    (package / "connection.py").write_text("")
    assert hook.wheel_extensions(tmp_path) == {
        str(runtime): "0abc__mypyc.cpython-311-x86_64-linux-gnu.so",
        str(module): "connscale/core/connection.cpython-311-x86_64-linux-gnu.so",
    }


@pytest.mark.slow
def test_a_default_wheel_is_pure_python_even_from_a_compiled_tree(tmp_path: Path) -> None:
    # The tree may hold extensions (make compile): a default build must leave them out.
    command = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps"]
    result = subprocess.run(
        [*command, "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if k != hook.SWITCH},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = tmp_path.glob("connscale-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "connscale/_hot_path.py" in names and "connscale/core/connection.py" in names
    assert not [name for name in names if name.endswith(".so")]
