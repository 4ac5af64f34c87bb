"""`connscale loadgen` against a real baseline server on loopback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from connscale.bench.orchestrator import default_servers, running_server
from connscale.cli import main


def test_loadgen_connects_and_reports_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = default_servers(names=["asyncio-protocol"])[0]
    with running_server(spec, tmp_path) as server:
        argv = ["loadgen", "--target", f"{server.host}:{server.port}", "--connections", "60"]
        argv += ["--duration", "0.3", "--concurrency", "4", "--mix", "ping=3,echo=1", "--json"]
        assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["connections"] == 60
    assert report["requests"] > 0 and report["errors"] == 0
    assert report["p50_ms"] is not None and report["p99_ms"] >= report["p50_ms"]


def test_loadgen_refused_target_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["loadgen", "--target", f"127.0.0.1:{port}", "--connections", "20", "--duration", "1"]
    assert main(argv) == 2
    assert "ECONNREFUSED" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--target", "nohost", "--connections", "1"],
        ["--target", "127.0.0.1:1", "--connections", "0"],
        ["--target", "127.0.0.1:1", "--connections", "1", "--rate", "1", "--concurrency", "1"],
        ["--target", "127.0.0.1:1", "--connections", "1", "--mix", "pong"],
    ],
)
def test_loadgen_bad_arguments(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadgen", *extra]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["websockets-echo", "asyncio-tcp-echo"])
def test_loadgen_speaks_other_protocols(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from connscale.bench.baselines import missing

    if missing(name):
        pytest.skip(missing(name) or "")
    spec = default_servers(names=[name])[0]
    with running_server(spec, tmp_path) as server:
        argv = ["loadgen", "--target", f"{server.host}:{server.port}", "--connections", "40"]
        argv += ["--protocol", spec.protocol, "--duration", "0.2", "--concurrency", "4", "--json"]
        if spec.probe:
            argv += ["--probe", spec.probe]
        assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["connections"] == 40 and report["requests"] > 0 and report["dropped"] == 0


def test_loadgen_names_the_protocol_when_the_target_speaks_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first trip: MCP spoken to a line-echo server. The echo comes back as the
    # initialize line itself, which is no JSON-RPC result: the error says what to do.
    spec = default_servers(names=["asyncio-tcp-echo"])[0]
    with running_server(spec, tmp_path) as server:
        argv = ["loadgen", "--target", f"{server.host}:{server.port}", "--connections", "20"]
        assert main([*argv, "--duration", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "does the target speak mcp?" in err and "--protocol" in err
    assert err.splitlines()[-1].startswith("connscale loadgen: error:")
