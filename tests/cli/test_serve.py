"""``connscale serve``: ready file, stats, signals, flags, bearer tokens, user errors."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale import _hot_path
from connscale.cli import serve as serve_command
from connscale.errors import ConfigurationError
from connscale.server.config import ServerConfig
from connscale.server.supervisor import ready_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serve_harness import serve

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="connscale serve")
    serve_command.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(("engine", "transport"), [("epoll", "tcp"), ("asyncio", "http")])
def test_ready_file_contract_and_clean_stop(tmp_path: Path, engine: str, transport: str) -> None:
    stats_dir = tmp_path / "stats"
    arguments = ("--engine", engine, "--transport", transport, "--stats-dir", str(stats_dir))
    with serve(tmp_path, *arguments) as (process, ready):
        assert ready == {
            "transport": transport,
            "engine": engine,
            "host": "127.0.0.1",
            "port": ready["port"],
            "supervisor_pid": process.pid,
            "pids": [process.pid],
            "hot_path": _hot_path.mode(),  # the subprocess imports what this one does
        }
        assert ready["port"] > 0
        with socket.create_connection(("127.0.0.1", ready["port"]), timeout=5):
            os.kill(process.pid, signal.SIGUSR1)
            path = stats_dir / f"worker-{process.pid}.json"
            deadline = time.monotonic() + 10
            while not path.exists():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            stats = json.loads(path.read_text())
            assert stats["pid"] == process.pid and stats["connections"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_says_where_it_listens_and_how_it_runs(tmp_path: Path, workers: str) -> None:
    ready_file = tmp_path / "ready.json"
    command = [sys.executable, "-m", "connscale", "serve", "--transport", "http"]
    process = subprocess.Popen(
        [*command, "--workers", workers, "--ready-file", str(ready_file)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready_file.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        ready = json.loads(ready_file.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    [line] = [text for text in stderr.decode().splitlines() if text.startswith("connscale:")]
    plural = "1 worker," if workers == "1" else "2 workers,"
    assert f"http://127.0.0.1:{ready['port']}/mcp" in line and plural in line
    assert line.endswith(f"hot path {ready['hot_path']})")


def test_the_ready_line_says_where_and_how(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ServerConfig(transport="tcp", engine="asyncio")
    monkeypatch.setattr(_hot_path, "compiled_modules", lambda: [])
    line = ready_line(config, 7000)
    assert line == (
        "connscale: serving MCP at tcp://127.0.0.1:7000 (asyncio engine, 1 worker, "
        "hot path interpreted)"
    )
    ipv6 = ServerConfig(transport="http", host="::1")
    assert "at http://[::1]:7000/mcp (" in ready_line(ipv6, 7000)


def test_bad_arguments_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connscale", "serve", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "workers" in result.stderr and "Traceback" not in result.stderr


def test_port_in_use_is_a_clean_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "connscale", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert "cannot bind" in result.stderr


# --- flags reach the configuration -----------------------------------------------------


def test_limit_flags_reach_the_config() -> None:
    config = serve_command.build_config(
        parse(
            "--transport",
            "http",
            "--idle-timeout",
            "30",
            "--http-keepalive-timeout",
            "2.5",
            "--socket-send-buffer",
            "65536",
            "--max-json-items",
            "100",
        )
    )
    assert config.limits.idle_timeout == 30.0
    assert config.http_keepalive_timeout == 2.5
    assert config.socket_send_buffer == 65536
    assert config.limits.max_json_items == 100


def test_limit_flags_default_to_off_and_zero_means_default() -> None:
    defaults = serve_command.build_config(parse())
    zeros = serve_command.build_config(
        parse("--idle-timeout", "0", "--http-keepalive-timeout", "0", "--socket-send-buffer", "0")
    )
    for config in (defaults, zeros):
        assert config.limits.idle_timeout is None  # off
        assert config.http_keepalive_timeout is None  # the handshake timeout
        assert config.socket_send_buffer == 0  # kernel autotuning
        assert config.bearer_token is None


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--idle-timeout", "-1"),
        ("--idle-timeout", "nan"),
        ("--http-keepalive-timeout", "-0.5"),
        ("--http-keepalive-timeout", "inf"),
        ("--socket-send-buffer", "-1"),
        ("--socket-send-buffer", "1.5"),
    ],
)
def test_bad_limit_flag_values_exit_2_naming_the_flag(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(flag, value)
    assert exit_info.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err


@given(st.text(max_size=30))
def test_seconds_and_bytes_types_accept_only_what_they_promise(text: str) -> None:
    for convert in (serve_command._seconds, serve_command._byte_count):
        try:
            value = convert(text)
        except argparse.ArgumentTypeError:
            continue
        assert value >= 0 and value != float("inf")


def test_negative_flag_through_the_real_cli_is_a_clean_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connscale", "serve", "--socket-send-buffer", "-4096"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--socket-send-buffer" in result.stderr and "Traceback" not in result.stderr


# --- bearer token ------------------------------------------------------------------------


def write_token(tmp_path: Path) -> str:
    token = secrets.token_urlsafe(32)
    path = tmp_path / "token"
    path.write_text(token + "\n")  # surrounding whitespace is dropped
    path.chmod(0o600)
    return token


def test_token_file_reaches_the_config_and_needs_http(tmp_path: Path) -> None:
    token = write_token(tmp_path)
    token_file = str(tmp_path / "token")
    config = serve_command.build_config(parse("--transport", "http", "--token-file", token_file))
    assert config.bearer_token == token.encode()
    assert token not in repr(config)
    with pytest.raises(ConfigurationError, match="--transport http"):
        serve_command.build_config(parse("--token-file", token_file))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_token_file_asks_every_request_for_the_bearer_token(tmp_path: Path, workers: str) -> None:
    token = write_token(tmp_path)
    arguments = (
        "--transport",
        "http",
        "--workers",
        workers,
        "--token-file",
        str(tmp_path / "token"),
    )
    with serve(tmp_path, *arguments) as (process, ready):
        url = f"http://127.0.0.1:{ready['port']}/mcp"
        refused = httpx.post(url, json=INITIALIZE, headers=MCP_HEADERS, timeout=5)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].lower().startswith("bearer")
        wrong = {**MCP_HEADERS, "authorization": "Bearer " + token[:-1] + "x"}
        assert httpx.post(url, json=INITIALIZE, headers=wrong, timeout=5).status_code == 401
        right = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
        opened = httpx.post(url, json=INITIALIZE, headers=right, timeout=5)
        assert opened.status_code == 200 and opened.json()["result"]["serverInfo"]
        right["mcp-session-id"] = opened.headers["mcp-session-id"]
        for request_id in range(2, 6):  # new connections: with 2 workers, either may answer
            ping = {"jsonrpc": "2.0", "id": request_id, "method": "ping"}
            assert httpx.post(url, json=ping, headers=right, timeout=5).json()["result"] == {}
        without = {key: value for key, value in right.items() if key != "authorization"}
        ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
        assert httpx.post(url, json=ping, headers=without, timeout=5).status_code == 401
        # The token reaches workers through the spawn pipe: never argv, never the environment.
        for pid in {process.pid, *ready["pids"]}:
            for name in ("cmdline", "environ"):
                assert token.encode() not in Path(f"/proc/{pid}/{name}").read_bytes()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


# --- the session key file a fleet shares ----------------------------------------------------


def write_keys(path: Path, *keys: bytes) -> Path:
    path.write_text(
        "# connscale session keys: current first\n" + "".join(f"{k.hex()}\n" for k in keys)
    )
    path.chmod(0o600)
    return path


def test_session_key_file_reaches_the_config(tmp_path: Path) -> None:
    key_file = write_keys(tmp_path / "keys", secrets.token_bytes(32))
    config = serve_command.build_config(parse("--session-key-file", str(key_file)))
    assert config.session_key_file == key_file
    assert serve_command.build_config(parse()).session_key_file is None


@pytest.mark.parametrize(
    "content",
    [b"", b"not a key\n", secrets.token_hex(31).encode(), secrets.token_bytes(64)],
    ids=["empty", "words", "short", "binary"],
)
def test_a_bad_session_key_file_is_one_line_and_exit_2(tmp_path: Path, content: bytes) -> None:
    key_file = tmp_path / "keys"
    key_file.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "connscale", "serve", "--session-key-file", str(key_file)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    error = result.stderr.strip()
    assert b"\n" not in error and b"Traceback" not in error
    assert b"session key file" in error
    if len(content) >= 8:
        assert content.strip() not in error


def test_a_fleet_sharing_the_key_file_serves_each_other_sessions(tmp_path: Path) -> None:
    """Two servers with one key file serve one session; a rotated one still opens it."""
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    fleet = write_keys(tmp_path / "fleet", old)
    rotated = write_keys(tmp_path / "rotated", new, old)  # new current, old still accepted
    homes = [tmp_path / name for name in ("a", "b", "c")]
    for home in homes:
        home.mkdir()

    def url(ready: dict[str, object]) -> str:
        return f"http://{ready['host']}:{ready['port']}/mcp"

    def session(ready: dict[str, object]) -> str:
        opened = httpx.post(url(ready), json=INITIALIZE, headers=MCP_HEADERS, timeout=5)
        assert opened.status_code == 200
        return opened.headers["mcp-session-id"]

    def answers(ready: dict[str, object], session_id: str) -> int:
        headers = {**MCP_HEADERS, "mcp-session-id": session_id}
        ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
        return httpx.post(url(ready), json=ping, headers=headers, timeout=5).status_code

    http = ("--transport", "http")
    with (
        serve(
            homes[0],
            *http,
            "--host",
            "127.0.0.2",
            "--workers",
            "2",
            "--session-key-file",
            str(fleet),
        ) as (
            first,
            a,
        ),
        serve(homes[1], *http, "--host", "127.0.0.3", "--session-key-file", str(rotated)) as (_, b),
        serve(homes[2], *http, "--host", "127.0.0.4") as (_, c),
    ):
        from_a, from_b = session(a), session(b)
        assert answers(b, from_a) == 200  # sealed under the old key: B still opens it
        assert answers(a, from_a) == 200
        assert answers(a, from_b) == 404  # sealed under the new key, which A does not know yet
        assert answers(c, from_a) == 404  # a server with a key of its own: a foreign session
        for pid in {first.pid, *a["pids"]}:  # the keys reach workers through the fork only
            for name in ("cmdline", "environ"):
                assert old.hex().encode() not in Path(f"/proc/{pid}/{name}").read_bytes()
