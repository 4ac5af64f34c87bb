"""``python -m benchmarks.http_setup``: a tiny run of the setup benchmark and its floor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.http_setup", *arguments],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_connscale_and_its_floor_are_measured_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "setup.json"
    arguments = ("--servers", "connscale,floor", "--clients", "1,3", "--rounds", "2")
    completed = run(*arguments, "--sessions", "30", "--warmup", "5", "--json", str(out))
    assert completed.returncode == 0, completed.stderr
    figures = {(row["server"], row["clients"]): row for row in json.loads(out.read_text())}
    assert set(figures) == {("connscale", 1), ("floor", 1), ("connscale", 3), ("floor", 3)}
    for row in figures.values():
        assert len(row["rounds_us"]) == 2
        assert row["setup_cpu_us"] > 0
        assert row["setups_per_second"] > 0
        # Per round, busy = CPU per setup x setups a second; medians of two rounds stay close.
        implied = row["setup_cpu_us"] * row["setups_per_second"] / 1e4
        assert 0.5 * implied < row["busy_percent"] < 2 * implied
    lines = completed.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(header, (cell.strip() for cell in line.split("|")[1:-1]), strict=True))
        rows[(cells["server"], cells["clients at once"])] = cells
    assert rows[("floor", "3")]["above its floor µs"] == "-"  # not measured against itself
    for clients in (1, 3):
        above = float(rows[("connscale", str(clients))]["above its floor µs"])
        expected = figures[("connscale", clients)]["setup_cpu_us"]
        expected -= figures[("floor", clients)]["setup_cpu_us"]
        assert above == round(expected)
        busy = rows[("connscale", str(clients))]["server busy"]
        assert busy == f"{figures[('connscale', clients)]['busy_percent']:.0f}%"


def test_bad_flags_are_refused_with_a_clear_message() -> None:
    unknown = run("--servers", "connscale,nginx")
    assert unknown.returncode == 2
    assert "unknown server 'nginx'" in unknown.stderr
    assert run("--rounds", "0").returncode == 2
    assert run("--sessions", "many").returncode == 2
    assert "whole numbers" in run("--clients", "1,x").stderr
    assert run("--clients", "0").returncode == 2
    assert run("--clients", "8", "--sessions", "4").returncode == 2  # fewer sessions than clients
