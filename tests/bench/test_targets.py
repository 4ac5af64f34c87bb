"""What a bench measures: the reference server, baselines by name, and users' targets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.bench.targets import custom_server, default_servers, parse_target
from connscale.errors import ConfigurationError


def test_default_servers_give_the_reference_server_enough_workers() -> None:
    specs = default_servers(max_connections=100_000)
    reference = specs[0]
    assert reference.name == "connscale-epoll" and reference.workers == 8
    assert "--workers" in reference.argv and "8" in reference.argv
    assert reference.max_connections / reference.workers < 20_000
    assert [s.name for s in specs[1:]] == ["asyncio-streams", "asyncio-protocol", "uvloop-protocol"]
    assert all(s.max_connections == 15_000 and s.protocol == "mcp" for s in specs[1:])
    assert default_servers(max_connections=1_000_000)[0].workers == 80
    http = default_servers(transport="http")
    assert [(s.name, s.protocol) for s in http] == [
        ("connscale-http", "mcp-http"),
        ("mcp-sdk", "mcp-http"),
    ]
    assert [s.name for s in default_servers(names=["connscale", "uvloop-protocol"])] == [
        "connscale-epoll",
        "uvloop-protocol",
    ]
    with pytest.raises(ConfigurationError, match="unknown server"):
        default_servers(names=["nginx"])


def test_websocket_and_raw_tcp_baselines_are_chosen_by_name() -> None:
    specs = {s.name: s for s in default_servers(names=["all"])}
    assert specs["websockets-echo"].protocol == "websocket"
    assert specs["aiohttp-ws"].protocol == "websocket"
    tcp = specs["asyncio-tcp-echo"]
    assert tcp.protocol == "tcp" and tcp.probe == "ping" and tcp.transport == "tcp"
    assert "connscale-epoll" in specs and "mcp-sdk" in specs


def test_a_server_is_measured_in_another_protocol_it_speaks() -> None:
    names = ["connscale:mcp-listen", "mcp-sdk:mcp-listen", "connscale:mcp-stateless"]
    names += ["mcp-sdk:mcp-stateless", "mcp-sdk:mcp-http", "connscale:mcp"]
    specs = default_servers(names=names, max_connections=16_000)
    assert [(s.name, s.protocol, s.transport) for s in specs] == [
        ("connscale-listen", "mcp-listen", "http"),
        ("mcp-sdk-listen", "mcp-listen", "http"),
        ("connscale-stateless", "mcp-stateless", "http"),
        ("mcp-sdk-stateless", "mcp-stateless", "http"),
        ("mcp-sdk", "mcp-http", "http"),
        ("connscale-epoll", "mcp", "tcp"),
    ]
    listen, sdk_listen = specs[0], specs[1]
    assert listen.argv[listen.argv.index("--engine") + 1] == "epoll"
    assert listen.argv[listen.argv.index("--transport") + 1] == "http"
    assert listen.max_connections == 16_000 and not listen.scale_plateaus
    stateless = specs[2].argv  # held idle between requests: no keep-alive timeout to drop it
    assert stateless[stateless.index("--http-keepalive-timeout") + 1] == "3600"
    assert "--http-keepalive-timeout" not in listen.argv
    # The SDK refuses its 1,025th listen stream: it gets its own plateaus up to 1,000.
    assert sdk_listen.max_connections == 1000 and sdk_listen.scale_plateaus
    assert specs[3].max_connections == 15_000 and not specs[3].scale_plateaus
    for wrong, message in (
        ("connscale:websocket", "connscale does not speak 'websocket'"),
        ("mcp-sdk:mcp", "mcp-sdk does not speak 'mcp'"),
        ("asyncio-streams:mcp-listen", "asyncio-streams does not speak"),
        ("nginx:mcp-listen", "unknown server"),
    ):
        with pytest.raises(ConfigurationError, match=message):
            default_servers(names=[wrong])


def test_custom_server_spec_and_a_name_without_slashes() -> None:
    spec = custom_server("python -m myserver --fast", 9000, max_connections=10)
    assert spec.argv == ("python", "-m", "myserver", "--fast") and spec.port == 9000
    assert spec.protocol == "mcp"
    # The crash of issue 13: a name built from a command with a path in it.
    path_command = custom_server(
        "/usr/bin/python3 /srv/app/server.py 18001", 18001, max_connections=1
    )
    assert path_command.name == "server.py" and "/" not in path_command.name
    assert custom_server("python3 -m my.app --x", 9, max_connections=1).name == "my.app"
    assert custom_server("python -c 'pass'", 9, max_connections=1).name == "python-c"
    assert custom_server("./bin/my server", 9, max_connections=1).name == "my"
    assert custom_server("x", 9, transport="http", max_connections=1).protocol == "mcp-http"
    for command, port in (("", 9000), ("x", 0), ("x", 70_000), ("'unclosed", 9)):
        with pytest.raises(ConfigurationError):
            custom_server(command, port, max_connections=10)
    with pytest.raises(ConfigurationError, match="unknown protocol"):
        custom_server("x", 9, protocol="gopher", max_connections=1)


def test_parse_target_reads_name_protocol_path_port_and_the_rest_as_command() -> None:
    spec = parse_target("chat:websocket/ws/v1:18001:python chat.py --bind a:b", max_connections=50)
    assert (spec.name, spec.protocol, spec.path, spec.port) == (
        "chat",
        "websocket",
        "/ws/v1",
        18001,
    )
    assert spec.argv == ("python", "chat.py", "--bind", "a:b")
    assert spec.transport == "http" and spec.max_connections == 50
    raw = parse_target("feed:tcp:9:./feed", max_connections=5, probe="hello")
    assert raw.protocol == "tcp" and raw.probe == "hello" and raw.path is None
    assert parse_target("m:mcp:9:srv", max_connections=5, probe="hello").probe is None
    for bad in ("chat", "chat:websocket:port:cmd", "a b:tcp:9:x", ":tcp:9:x", "n:nope:9:x"):
        with pytest.raises(ConfigurationError):
            parse_target(bad, max_connections=5)


@given(st.text(max_size=60))
def test_parse_target_refuses_garbage_with_a_configuration_error(text: str) -> None:
    try:
        spec = parse_target(text, max_connections=5)
    except ConfigurationError:
        return
    assert spec.argv and 0 < (spec.port or 0) < 65536
