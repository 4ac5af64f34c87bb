"""SIGTERM with requests in flight: stop accepting, answer everything, close, exit in time."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from support import LineClient, line, ping, served, tool_call

SLOW_EXPERT = """
import asyncio
from connscale.server.experts import ExpertAnswer

async def slow(question):
    await asyncio.sleep(0.6)  # still thinking when SIGTERM arrives
    return ExpertAnswer("slept on it", 0.9)
"""
PINGS = 2000
CONSULTS = 5


@pytest.mark.parametrize("engine", ["epoll", "asyncio"])
def test_sigterm_answers_every_request_in_flight(tmp_path: Path, engine: str) -> None:
    (tmp_path / "slow_expert_plugin.py").write_text(SLOW_EXPERT)
    with served(
        tmp_path,
        "--engine",
        engine,
        "--experts",
        "slow_expert_plugin:slow",
        "--experts-timeout",
        "5",
        env={"PYTHONPATH": str(tmp_path)},
    ) as (process, ready):
        port = ready["port"]
        client = LineClient(port, timeout=10)
        client.initialize()
        other = LineClient(port, timeout=10)  # an idle session: closed cleanly too
        other.initialize()
        consults = b"".join(
            line(tool_call(10_000 + i, "consult_experts", {"question": f"q{i}?"}))
            for i in range(CONSULTS)
        )
        client.send(consults + b"".join(line(ping(i)) for i in range(PINGS)))
        first = client.receive()  # the server is working through them
        assert first is not None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        answered = {first["id"]}
        while (reply := client.receive()) is not None:
            assert "result" in reply, reply
            answered.add(reply["id"])
        expected = set(range(PINGS)) | {10_000 + i for i in range(CONSULTS)}
        assert answered == expected  # no response lost, then a clean close
        assert other.receive() is None  # the idle session was closed (EOF)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 5.0  # within the shutdown grace
        with pytest.raises(OSError):  # nobody listens any more
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        client.close()
        other.close()
