"""Loading the app to serve from a target string: every way it can be wrong is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connscale.errors import AppLoadError, ConfigurationError
from connscale.server.config import ServerConfig
from connscale.server.loading import as_surface, load_app
from connscale.server.supervisor import reference_app

SURFACE_FILE = """
from connscale.server.supervisor import reference_app
from connscale.server.config import ServerConfig

app = reference_app(ServerConfig(server_name="from-a-file"))
"""


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nocolon", "expected package.module:attribute"),
        (":app", "expected package.module:attribute"),
        ("json:", "expected package.module:attribute"),
        ("missing_file.py:app", "no such file"),
        ("connscale_no_such_module_xyz:app", "no module named"),
        ("json:nothing", "has no attribute 'nothing'"),
        ("json:dumps", "is not a connscale App"),
    ],
)
def test_wrong_targets_are_one_clear_error(target: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message) as caught:
        load_app(target)
    assert isinstance(caught.value, ConfigurationError)  # a user error: exit code 2
    assert "\n" not in str(caught.value)


def test_an_import_that_raises_is_reported_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(AppLoadError, match="raised RuntimeError: boom at import"):
        load_app(f"{tmp_path / 'broken.py'}:app")
    (tmp_path / "exits.py").write_text("raise SystemExit(3)\n")
    with pytest.raises(AppLoadError, match="SystemExit"):
        load_app(f"{tmp_path / 'exits.py'}:app")


def test_a_file_target_and_a_module_target_load(tmp_path: Path) -> None:
    path = tmp_path / "served_app.py"
    path.write_text(SURFACE_FILE)
    surface = load_app(f"{path}:app")
    assert surface.info.name == "from-a-file"
    sys.path.insert(0, str(tmp_path))
    try:
        assert load_app("served_app:app").info.name == "from-a-file"
    finally:
        sys.path.remove(str(tmp_path))


def test_as_surface_accepts_surfaces_and_adapters() -> None:
    surface = reference_app(ServerConfig())
    assert as_surface(surface) is surface

    class Adapted:
        def __connscale_surface__(self) -> object:
            return surface

    assert as_surface(Adapted()) is surface
    with pytest.raises(AppLoadError):
        as_surface(object())


def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import nonexistent_dependency_xyz\n")
    result = subprocess.run(
        [sys.executable, "-m", "connscale", "serve", "--app", f"{tmp_path / 'broken.py'}:app"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nonexistent_dependency_xyz" in lines[0]
