"""`connscale bench`: the smoke run, several protocols in one run, and one-line errors."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from connscale.bench.baselines import missing
from connscale.cli import main
from connscale.loadgen.protocols import PROTOCOL_NAMES
from connscale.report.schema import read_run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
        assert server.error is None, (server.name, server.error)
        assert [p.connections for p in server.plateaus] == [200, 500, 1000]
        assert server.scaling is not None
        assert server.traffic is not None and server.traffic.requests > 0
    summary = (out / "SUMMARY.md").read_text()
    assert "## Targets" in summary and "| uvloop-protocol |" in summary
    assert "| uvloop-protocol |" in capsys.readouterr().out


ECHO_SERVER = """
import asyncio, sys

async def main(port):
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line)
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1])))
"""


@pytest.mark.slow
@pytest.mark.skipif(missing("websockets-echo") is not None, reason="needs the 'baselines' extra")
def test_users_servers_of_several_protocols_stand_beside_the_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The "done when": a user's WebSocket, raw TCP and MCP servers in one run,
    # beside baselines, one table and one chart.
    script = tmp_path / "echo.py"
    script.write_text(ECHO_SERVER)
    ws_script = tmp_path / "ws.py"
    ws_script.write_text(
        "import sys\nfrom connscale.bench.baselines import main\n"
        "sys.exit(main(['websockets-echo', '--port', sys.argv[1]]))\n"
    )
    mcp_script = tmp_path / "mcp.py"
    mcp_script.write_text(
        "import sys\nfrom connscale.bench.baselines import main\n"
        "sys.exit(main(['asyncio-protocol', '--port', sys.argv[1]]))\n"
    )
    ports = [_free_port() for _ in range(3)]
    out = tmp_path / "out"
    argv = ["bench", "--plateaus", "50,100,150", "--duration", "0.2", "--out", str(out)]
    argv += ["--no-progress", "--probe", "ping"]
    argv += ["--target", f"my-ws:websocket:{ports[0]}:{sys.executable} {ws_script} {ports[0]}"]
    argv += ["--target", f"my-tcp:tcp:{ports[1]}:{sys.executable} {script} {ports[1]}"]
    argv += ["--target", f"my-mcp:mcp:{ports[2]}:{sys.executable} {mcp_script} {ports[2]}"]
    argv += ["--servers", "websockets-echo", "asyncio-tcp-echo"]
    assert main(argv) == 0, capsys.readouterr().err
    run = read_run(out / "RUN.json")
    protocols = {s.name: s.protocol for s in run.servers}
    assert protocols == {
        "my-ws": "websocket",
        "my-tcp": "tcp",
        "my-mcp": "mcp",
        "websockets-echo": "websocket",
        "asyncio-tcp-echo": "tcp",
    }
    for server in run.servers:
        assert server.error is None and server.scaling is not None, server.name
        assert server.latency is not None and server.latency.requests > 0, server.name
    summary = (out / "SUMMARY.md").read_text()
    assert all(f"| {name} |" in summary for name in protocols)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 1 and all(name in html for name in protocols)


def test_bench_argument_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--target-cmd", "python -m x"]) == 2
    assert "--target-cmd and --port go together" in capsys.readouterr().err
    assert main(["bench", "--quick", "--plateaus", "a,b"]) == 2
    assert main(["bench", "--quick", "--servers", "nginx"]) == 2
    assert "unknown server" in capsys.readouterr().err
    assert main(["bench", "--quick", "--servers", "connscale:websocket"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "connscale does not speak 'websocket'" in err
    assert main(["bench", "--target", "garbage"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NAME:PROTOCOL[/PATH]:PORT:COMMAND" in err


def test_an_unknown_flag_shows_the_bench_usage_not_the_top_level_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: connscale bench" in err and "unrecognized arguments: --bogus" in err


def test_a_port_in_use_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(4)
        port = other.getsockname()[1]
        out = tmp_path / "out"
        argv = ["bench", "--quick", "--out", str(out), "--target-cmd", "sleep 30"]
        assert main([*argv, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "already in use" in err and err.count("\n") == 1
    assert not out.exists()


def test_a_failed_server_is_exit_2_with_one_line_after_writing_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    out = tmp_path / "out"
    argv = ["bench", "--plateaus", "10,20", "--out", str(out), "--no-progress"]
    assert main([*argv, "--target-cmd", f"{sys.executable} -c 'pass'", "--port", str(port)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("connscale bench: error: 1 of 1 server(s) failed;")
    assert "exited" in err[-1] and (out / "RUN.json").exists()


def test_help_says_what_a_target_can_speak(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("bench", "loadgen"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for protocol in PROTOCOL_NAMES:
            assert protocol in text, (command, protocol)


def test_servers_are_honored_beside_a_target_cmd() -> None:
    from connscale.cli import build_parser
    from connscale.cli.bench import chosen_servers

    argv = ["bench", "--target-cmd", "python /srv/ws.py 9000", "--port", "9000"]
    argv += ["--protocol", "websocket", "--servers", "websockets-echo", "asyncio-protocol"]
    args = build_parser().parse_args(argv)
    specs = chosen_servers(args, 1000)
    assert [(s.name, s.protocol) for s in specs] == [
        ("ws.py", "websocket"),
        ("websockets-echo", "websocket"),
        ("asyncio-protocol", "mcp"),
    ]
    alone = build_parser().parse_args(["bench", "--target-cmd", "srv", "--port", "9000"])
    assert [s.name for s in chosen_servers(alone, 1000)] == ["srv"]
