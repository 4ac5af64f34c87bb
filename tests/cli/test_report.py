"""`connscale report`: formats, output choice, corrupt input gives a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connscale.cli import main
from connscale.report.schema import Machine, Plateau, Run, ServerResult, write_run


def make_run(path: Path) -> Path:
    run = Run(
        created="2026-11-23T10:00:00Z",
        command="connscale bench",
        machine=Machine(
            hostname="h", cpus=2, memory_bytes=1 << 30, python="3.11.7", platform="Linux"
        ),
        servers=[
            ServerResult(
                name="s1",
                plateaus=[Plateau(connections=n, uss=1_000_000 + 100 * n) for n in (0, 10, 20)],
            )
        ],
    )
    write_run(run, path)
    return path


def test_html_from_suffix(tmp_path: Path) -> None:
    run_path = make_run(tmp_path / "RUN.json")
    out = tmp_path / "report.html"
    assert main(["report", str(run_path), "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page


@pytest.mark.parametrize(("fmt", "start"), [("markdown", "# connscale run"), ("json", "{")])
def test_stdout_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, start: str
) -> None:
    run_path = make_run(tmp_path / "RUN.json")
    assert main(["report", str(run_path), "--format", fmt]) == 0
    assert capsys.readouterr().out.startswith(start)


def test_explicit_format_wins_over_suffix(tmp_path: Path) -> None:
    run_path = make_run(tmp_path / "RUN.json")
    out = tmp_path / "report.txt"
    assert main(["report", str(run_path), "--format", "markdown", "-o", str(out)]) == 0
    assert "| s1 |" in out.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"schema": "connscale.run/0"}', "unsupported schema"),
        (b'{"schema": "connscale.run/1", "created": 5}', "invalid run record"),
    ],
)
def test_corrupt_run_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    bad = tmp_path / "RUN.json"
    bad.write_bytes(content)
    assert main(["report", str(bad), "--format", "html", "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_command_line_entry_point(tmp_path: Path) -> None:
    run_path = make_run(tmp_path / "RUN.json")
    done = subprocess.run(
        [sys.executable, "-m", "connscale", "report", str(run_path), "--format", "markdown"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| s1 |" in done.stdout
