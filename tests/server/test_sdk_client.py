"""The official MCP SDK client against examples/everything.py: over Streamable HTTP on both
engines and over stdio, it lists and calls tools (progress, sampling, elicitation), reads
resources, gets prompts, subscribes, and hears of list changes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from connscale.server.loading import load_app
from support import ENGINES, running

pytestmark = [
    pytest.mark.sdk,
    # The handshake era's subscriptions, which the SDK marks deprecated for 2026-07-28.
    pytest.mark.filterwarnings("ignore:resources/subscribe is removed"),
]
mcp_types = pytest.importorskip("mcp_types")
pytest.importorskip("mcp.client.session")

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

EVERYTHING = Path(__file__).resolve().parents[2] / "examples" / "everything.py"


async def sampling(context: Any, params: Any) -> Any:
    text = params.messages[0].content.text
    return mcp_types.CreateMessageResult(
        role="assistant",
        content=mcp_types.TextContent(type="text", text=f"echo of {text}"),
        model="test-model",
        stop_reason="endTurn",
    )


async def elicitation(context: Any, params: Any) -> Any:
    return mcp_types.ElicitResult(action="accept", content={"response": "yes"})


async def exercise(session: ClientSession, notes: list[Any], *, streams: bool) -> None:
    init = await session.initialize()
    assert init.server_info.name == "connscale-everything"
    names = {tool.name for tool in (await session.list_tools()).tools}
    assert {"test_simple_text", "test_sampling", "midpoint"} <= names
    simple = await session.call_tool("test_simple_text", {})
    assert simple.content[0].text == "This is a simple text response for testing."  # type: ignore[union-attr]
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    result = await session.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
    assert not result.is_error and progress == [0, 50, 100]
    sampled = await session.call_tool("test_sampling", {"prompt": "hello"})
    assert sampled.content[0].text == "LLM response: echo of hello"  # type: ignore[union-attr]
    elicited = await session.call_tool("test_elicitation", {"message": "ok?"})
    assert "action=accept" in elicited.content[0].text  # type: ignore[union-attr]
    structured = await session.call_tool("midpoint", {"a": {"x": 0, "y": 0}, "b": {"x": 2, "y": 4}})
    assert structured.structured_content == {"x": 1.0, "y": 2.0}
    invalid = await session.call_tool("midpoint", {"a": {"x": "far"}})
    assert invalid.is_error and "a" in invalid.content[0].text  # type: ignore[union-attr]
    text = await session.read_resource("test://static-text")
    assert text.contents[0].text.startswith("This is the content")  # type: ignore[union-attr]
    binary = await session.read_resource("test://static-binary")
    assert binary.contents[0].blob  # type: ignore[union-attr]
    templated = await session.read_resource("test://template/42/data")
    assert '"id": "42"' in templated.contents[0].text  # type: ignore[union-attr]
    templates = await session.list_resource_templates()
    assert [t.uri_template for t in templates.resource_templates] == ["test://template/{id}/data"]
    prompt = await session.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
    assert "arg1='a'" in prompt.messages[0].content.text  # type: ignore[union-attr]
    if streams:  # notifications outside a request need a stream to the client
        await session.subscribe_resource("test://watched-resource")
        await session.call_tool("touch_watched_resource", {})
        await session.call_tool("add_a_tool", {"name": f"late_{len(notes)}"})
        with anyio.fail_after(5):
            while not {"updated", "tools_changed"} <= {kind for kind, _ in notes}:
                await anyio.sleep(0.05)


def recorder(notes: list[Any]) -> Any:
    async def handle(message: Any) -> None:
        if isinstance(message, mcp_types.ResourceUpdatedNotification):
            notes.append(("updated", message.params.uri))
        elif isinstance(message, mcp_types.ToolListChangedNotification):
            notes.append(("tools_changed", None))

    return handle


@pytest.mark.parametrize("engine", ENGINES)
def test_the_sdk_client_over_streamable_http(engine: str) -> None:
    app = load_app(f"{EVERYTHING}:app")
    with running(engine, "http", app=app) as server:
        url = f"http://127.0.0.1:{server.port}/mcp"
        notes: list[Any] = []

        async def scenario() -> None:
            with anyio.fail_after(30):
                async with (
                    streamable_http_client(url) as (read, write),
                    ClientSession(
                        read,
                        write,
                        sampling_callback=sampling,
                        elicitation_callback=elicitation,
                        message_handler=recorder(notes),
                    ) as session,
                ):
                    await exercise(session, notes, streams=True)

        anyio.run(scenario)
        assert ("updated", "test://watched-resource") in notes


def test_the_sdk_client_over_stdio() -> None:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "connscale", "serve", "--transport", "stdio", "--app", f"{EVERYTHING}:app"],
    )
    notes: list[Any] = []

    async def scenario() -> None:
        with anyio.fail_after(60):
            async with (
                stdio_client(parameters) as (read, write),
                ClientSession(
                    read,
                    write,
                    sampling_callback=sampling,
                    elicitation_callback=elicitation,
                    message_handler=recorder(notes),
                ) as session,
            ):
                await exercise(session, notes, streams=True)

    anyio.run(scenario)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_sdk_client_negotiates_2026_07_28_and_a_handshake_client_still_works(
    engine: str,
) -> None:
    from mcp import Client

    app = load_app(f"{EVERYTHING}:app")

    async def elicit(context: Any, params: Any) -> Any:
        return mcp_types.ElicitResult(action="accept", content={"name": "Ada"})

    with running(engine, "http", app=app) as server:
        url = f"http://127.0.0.1:{server.port}/mcp"

        async def modern() -> None:
            with anyio.fail_after(30):
                async with Client(url, elicitation_callback=elicit) as client:
                    assert client.protocol_version == "2026-07-28"
                    names = {tool.name for tool in (await client.list_tools()).tools}
                    assert "test_simple_text" in names
                    asked = await client.call_tool("test_input_required_result_elicitation", {})
                    assert asked.content[0].text == "Hello, Ada!"  # type: ignore[union-attr]
                    read = await client.read_resource("test://static-text")
                    assert read.contents[0].text.startswith("This is")  # type: ignore[union-attr]
                    async with client.listen(tools_list_changed=True) as subscription:
                        await client.call_tool("add_a_tool", {"name": "arrived_late"})
                        async for event in subscription:
                            assert type(event).__name__ == "ToolsListChanged"
                            break
                    names = {tool.name for tool in (await client.list_tools()).tools}
                    assert "arrived_late" in names

        async def handshake() -> None:
            with anyio.fail_after(30):
                async with (
                    streamable_http_client(url) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    init = await session.initialize()
                    assert init.protocol_version == "2025-11-25"
                    simple = await session.call_tool("test_simple_text", {})
                    assert not simple.is_error

        anyio.run(modern)
        anyio.run(handshake)
