"""A user's App file under ``connscale serve --app FILE:app --workers 2``: the official MCP
SDK client over HTTP and a raw newline-JSON client over TCP both get its tools' answers, from
both workers, with an async tool that awaits I/O next to a sync one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support import INIT, INITIALIZED, LineClient, served, tool_call

APP = f"{Path(__file__).with_name('custom_app.py')}:app"
CONNECTIONS = 64  # SO_REUSEPORT spreads connections by hash: 64 miss a worker with p = 2**-63


def text_of(reply: dict[str, Any]) -> str:
    content = reply["result"]["content"]
    assert isinstance(content[0]["text"], str)
    return str(content[0]["text"])


def test_a_raw_tcp_client_gets_answers_from_both_workers(tmp_path: Path) -> None:
    arguments = ("--transport", "tcp", "--workers", "2", "--app", APP)
    with served(tmp_path, *arguments) as (_process, ready):
        assert len(ready["pids"]) == 2
        seen: set[int] = set()
        for _ in range(CONNECTIONS):
            client = LineClient(ready["port"])
            try:
                init = client.call(INIT)
                assert init is not None and init["result"]["serverInfo"] == {
                    "name": "custom-notes",
                    "version": "1.2.3",
                }
                client.send(INITIALIZED)
                # Both calls pipelined: the async one awaits a thread, the sync one does not.
                client.send(
                    tool_call(1, "read_note", {"line": 1}), tool_call(2, "add", {"a": 40, "b": 2})
                )
                replies = {
                    reply["id"]: reply for reply in (client.receive(), client.receive()) if reply
                }
                assert text_of(replies[1]) == "second note"
                assert replies[2]["result"]["structuredContent"] == {"result": 42}
                bad = client.call(tool_call(3, "read_note", {"line": 9}))
                assert bad is not None and bad["result"]["isError"] is True
                assert "no line 9" in text_of(bad)
                pid = client.call(tool_call(4, "worker_pid", {}))
                assert pid is not None
                seen.add(int(text_of(pid)))
            finally:
                client.sock.close()
            if len(seen) == 2:
                break
        assert seen == set(ready["pids"])


@pytest.mark.sdk
def test_the_official_sdk_client_gets_answers_from_both_workers(tmp_path: Path) -> None:
    anyio = pytest.importorskip("anyio")
    mcp = pytest.importorskip("mcp")
    arguments = ("--transport", "http", "--workers", "2", "--app", APP)
    with served(tmp_path, *arguments) as (_process, ready):
        url = f"http://127.0.0.1:{ready['port']}/mcp"
        seen: set[int] = set()

        async def run() -> None:
            with anyio.fail_after(60):
                for _ in range(CONNECTIONS):
                    async with mcp.Client(url, mode="legacy") as client:
                        tools = {tool.name for tool in (await client.list_tools()).tools}
                        assert tools == {"read_note", "add", "worker_pid"}
                        note = await client.call_tool("read_note", {"line": 0})
                        assert note.content[0].text == "first note"
                        total = await client.call_tool("add", {"a": 2, "b": 3})
                        assert total.structured_content == {"result": 5}
                        wrong = await client.call_tool("add", {"a": "two"})
                        assert wrong.is_error
                        pid = await client.call_tool("worker_pid", {})
                        seen.add(int(pid.content[0].text))
                    if len(seen) == 2:
                        return

        anyio.run(run)
        assert seen == set(ready["pids"])
