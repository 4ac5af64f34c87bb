"""`connscale bench --quick`: the smoke run of the main job (bounded, well under a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connscale.cli import main
from connscale.report.schema import read_run


@pytest.mark.slow
def test_quick_bench_measures_every_server_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    assert main(["bench", "--quick", "--out", str(out), "--no-progress"]) == 0
    run = read_run(out / "RUN.json")
    names = [server.name for server in run.servers]
    assert names == ["connscale-epoll", "asyncio-streams", "asyncio-protocol", "uvloop-protocol"]
    for server in run.servers:
        if server.name.startswith("connscale") and server.error:
            continue  # recorded, not hidden: the summary shows why it did not run
        assert server.error is None, (server.name, server.error)
        assert [p.connections for p in server.plateaus] == [200, 500, 1000]
        assert server.scaling is not None and server.scaling.marginal_bytes > 0
        assert server.traffic is not None and server.traffic.requests > 0
    summary = (out / "SUMMARY.md").read_text()
    assert "## Targets" in summary and "| uvloop-protocol |" in summary
    assert "| uvloop-protocol |" in capsys.readouterr().out


def test_bench_argument_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--target-cmd", "python -m x"]) == 2
    assert "--target-cmd and --port go together" in capsys.readouterr().err
    assert main(["bench", "--quick", "--plateaus", "a,b"]) == 2
    assert main(["bench", "--quick", "--servers", "nginx"]) == 2
    assert "unknown server" in capsys.readouterr().err
