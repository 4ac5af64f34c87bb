"""``connscale bench --app``: one SDK server object on the SDK's own server and on connscale,
side by side, with tools/call traffic to a tool of its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from connscale.bench.config import BenchConfig
from connscale.bench.lifecycle import running_server
from connscale.bench.orchestrator import failures, run_bench
from connscale.bench.targets import sdk_app_servers
from connscale.cli import bench as bench_cli
from connscale.errors import ConfigurationError
from connscale.loadgen.protocols import ProtocolOptions, make_protocol
from connscale.loadgen.protocols.mcp import request_body
from connscale.loadgen.swarm import Swarm

CALCULATOR = Path(__file__).resolve().parents[1] / "app" / "sdk_servers" / "calculator.py"
CALL = json.dumps({"name": "add", "arguments": {"a": 1, "b": 2}})


def test_the_call_kind_sends_the_given_tools_call() -> None:
    protocol = make_protocol("mcp-http", ProtocolOptions(call=CALL))
    assert protocol.traffic_mix() == "call"
    assert make_protocol("mcp-http").traffic_mix() == "ping"
    body = json.loads(request_body("call", 7, protocol.call))  # type: ignore[attr-defined]
    assert body == {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
    }
    for bad in ("not json", "[1]", '{"arguments": {}}'):
        with pytest.raises(ConfigurationError, match="tools/call"):
            make_protocol("mcp", ProtocolOptions(call=bad))


def test_an_app_becomes_two_servers_one_worker_each() -> None:
    sdk, ours = sdk_app_servers(f"{CALCULATOR}:mcp", call=CALL, max_connections=100_000)
    assert (sdk.name, ours.name) == ("calculator-on-sdk", "calculator-on-connscale")
    assert sdk.argv[-2:] == ("--app", f"{CALCULATOR}:mcp") and "mcp-sdk" in sdk.argv
    assert ours.argv[-4:] == ("--workers", "1", "--app", f"{CALCULATOR}:mcp")
    assert sdk.protocol == ours.protocol == "mcp-http"
    assert sdk.call == ours.call == CALL
    assert sdk.max_connections == ours.max_connections == 15_000
    with pytest.raises(ConfigurationError, match=r"file\.py:attribute"):
        sdk_app_servers("calculator.py", call=CALL, max_connections=10)


def parse(*argv: str) -> object:
    import argparse

    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.sdk
def test_the_cli_takes_an_app_and_finds_a_tool_to_call() -> None:
    pytest.importorskip("mcp.server.mcpserver")
    args = parse("--app", f"{CALCULATOR}:mcp", "--call", "add", "--arguments", '{"a": 1}')
    specs = bench_cli.chosen_servers(args, 1000)  # type: ignore[arg-type]
    assert [spec.name for spec in specs] == ["calculator-on-sdk", "calculator-on-connscale"]
    assert json.loads(specs[0].call or "") == {"name": "add", "arguments": {"a": 1}}
    # Without --call: the first tool that needs no arguments.
    assert json.loads(bench_cli.tool_call(f"{CALCULATOR}:mcp", None, None))["name"] == "crash"
    with pytest.raises(ConfigurationError, match="JSON"):
        bench_cli.tool_call(f"{CALCULATOR}:mcp", "add", "{")
    with pytest.raises(ConfigurationError, match="go with --app"):
        bench_cli.chosen_servers(parse("--call", "add"), 1000)  # type: ignore[arg-type]


@pytest.mark.sdk
def test_both_servers_answer_the_apps_tool(tmp_path: Path) -> None:
    pytest.importorskip("mcp.server.mcpserver")
    pytest.importorskip("uvicorn")
    for spec in sdk_app_servers(f"{CALCULATOR}:mcp", call=CALL, max_connections=10):
        with running_server(spec, tmp_path) as server:
            swarm = Swarm(server.host, server.port, protocol="mcp-http", call=CALL)
            try:
                exercise(swarm)
            finally:
                swarm.close_all()


def exercise(swarm: Swarm) -> None:
    swarm.grow(3)
    swarm.run_until(lambda: not swarm.growing, time.monotonic() + 30)
    assert swarm.status().established == 3, swarm.status().first_error
    swarm.start_traffic(duration=0.3, concurrency=2, mix=(("call", 1),))
    swarm.run_until(lambda: swarm.traffic_result() is not None, time.monotonic() + 10)
    result = swarm.traffic_result()
    assert result is not None and result.requests > 0 and result.errors == 0


@pytest.mark.sdk
@pytest.mark.slow
def test_a_small_side_by_side_run(tmp_path: Path) -> None:
    pytest.importorskip("mcp.server.mcpserver")
    pytest.importorskip("uvicorn")
    config = BenchConfig(
        plateaus=(50, 100),
        samples=2,
        sample_interval=0.02,
        settle_timeout=1.0,
        settle_tolerance=0.05,
        throughput_connections=100,
        traffic_duration=0.3,
        traffic_concurrency=4,
        latency_rate=50.0,
        grow_timeout=30.0,
        max_seconds=60.0,
    )
    specs = sdk_app_servers(f"{CALCULATOR}:mcp", call=CALL, max_connections=100)
    run = run_bench(specs, config, command="test", workdir=tmp_path)
    assert not failures(run), [server.error for server in run.servers]
    for server in run.servers:
        assert server.traffic is not None and server.traffic.requests > 0
        assert server.traffic.errors == 0
        assert server.setup_cpu_us is not None
