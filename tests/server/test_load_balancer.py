"""A fleet behind a real load balancer: HAProxy, round robin, in front of two ``connscale
serve`` processes on different loopback addresses sharing one session key file. An official
SDK client session's requests land on both servers, and the session survives the restart of
one of them: no sticky sessions, no shared store, only the key."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from connscale.testing import served

pytestmark = [pytest.mark.sdk, pytest.mark.slow]
pytest.importorskip("mcp.client.session")

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "deploy" / "haproxy.cfg"  # the file docs/DEPLOY.md shows
APP = Path(__file__).resolve().parent / "fleet_app.py"
HAPROXY = shutil.which("haproxy")


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def haproxy(bind: str, a: str, b: str) -> Iterator[subprocess.Popen[bytes]]:
    """HAProxy in the foreground on ``bind``, stopped (and reaped) on exit."""
    assert HAPROXY is not None
    env = {
        **os.environ,
        "CONNSCALE_LB_BIND": bind,
        "CONNSCALE_SERVER_A": a,
        "CONNSCALE_SERVER_B": b,
        "CONNSCALE_LB_MAXCONN": "2000",  # within this machine's open-files limit
    }
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(CONFIG)], env=env)
    try:
        host, port = bind.rsplit(":", 1)
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, "haproxy exited at start (see its error above)"
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 0.2):
                break
            assert time.monotonic() < deadline, "haproxy did not listen within 15 s"
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.mark.skipif(
    HAPROXY is None,
    reason="haproxy is not installed (apt-get install haproxy; .ci/run installs it)",
)
def test_an_sdk_session_lands_on_both_servers_and_survives_a_restart(tmp_path: Path) -> None:
    keys = tmp_path / "session-keys"
    keys.write_text(secrets.token_hex(32) + "\n")
    keys.chmod(0o600)
    for name in ("a", "b", "a2"):
        (tmp_path / name).mkdir()
    common = ("--transport", "http", "--app", f"{APP}:app", "--session-key-file", str(keys))
    port_a = free_port("127.0.0.2")
    with contextlib.ExitStack() as stack:
        process_a, ready_a = stack.enter_context(
            served(tmp_path / "a", (*common, "--host", "127.0.0.2", "--port", str(port_a)))
        )
        _, ready_b = stack.enter_context(
            served(tmp_path / "b", (*common, "--host", "127.0.0.3", "--workers", "2"))
        )
        bind = f"127.0.0.1:{free_port('127.0.0.1')}"
        stack.enter_context(haproxy(bind, f"127.0.0.2:{port_a}", f"127.0.0.3:{ready_b['port']}"))
        pids_a, pids_b = set(ready_a["pids"]), set(ready_b["pids"])
        restarted: dict[str, Any] = {}

        def restart_a() -> None:
            """Stop server A (SIGTERM, a clean exit) and start it again on the same port."""
            process_a.send_signal(signal.SIGTERM)
            assert process_a.wait(15) == 0
            arguments = (*common, "--host", "127.0.0.2", "--port", str(port_a))
            _, ready = stack.enter_context(served(tmp_path / "a2", arguments))
            restarted.update(ready)

        async def scenario() -> None:
            with anyio.fail_after(60):
                async with (
                    streamable_http_client(f"http://{bind}/mcp") as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()

                    async def whoami() -> int:
                        result = await session.call_tool("whoami", {})
                        assert not result.is_error, result
                        return int(result.content[0].text)  # type: ignore[union-attr]

                    before = {await whoami() for _ in range(8)}
                    assert before & pids_a and before & pids_b, (before, pids_a, pids_b)
                    assert before <= pids_a | pids_b
                    await anyio.to_thread.run_sync(restart_a)
                    new_a = set(restarted["pids"])
                    assert not new_a & pids_a  # a new process: it never saw the session
                    after: set[int] = set()
                    for _ in range(80):  # until A is back in HAProxy's rotation (checks: 0.5 s)
                        after.add(await whoami())
                        if after & new_a and after & pids_b:
                            break
                        await anyio.sleep(0.05)
                    assert after & new_a and after & pids_b, (after, new_a, pids_b)
                    assert after <= new_a | pids_b
                    tools = await session.list_tools()  # the same session, still initialized
                    assert [tool.name for tool in tools.tools] == ["whoami"]

        anyio.run(scenario)
