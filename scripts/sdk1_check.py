"""SDK 1.x (``FastMCP``) served by connscale: the same answers as the SDK's own server.

The test suite installs SDK 2.x, so the adapter's 1.x path is checked here, by hand, in a
throwaway virtual environment outside the repository:

    python3 -m venv /tmp/sdk1 && /tmp/sdk1/bin/pip install 'mcp<2' -e .
    /tmp/sdk1/bin/python scripts/sdk1_check.py

It loads tests/app/sdk_servers/{calculator,library,assistant}.py (written to import
``FastMCP`` where ``MCPServer`` is missing), runs one script of requests against the SDK's
own server (in memory) and against connscale (Streamable HTTP, the 1.x SDK client), and
prints SAME or the first differences. Exit code 0 when every server answers the same.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ROOT / "tests" / "app" / "sdk_servers"


def plain(model: Any) -> Any:
    if isinstance(model, list):
        return [plain(item) for item in model]
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped.pop("_meta", None)
    return dumped


async def attempt(call: Awaitable[Any]) -> Any:
    from mcp.shared.exceptions import McpError

    try:
        return plain(await call)
    except McpError as exc:
        return {"error": exc.error.message}


async def calculator(session: Any) -> list[Any]:
    out = [plain((await session.list_tools()).tools)]
    for name, arguments in (
        ("add", {"a": 1}),
        ("add", {"a": "one"}),
        ("divide", {"a": 1, "b": 0}),
        ("midpoint", {"a": {"x": 0}, "b": {"x": 2, "y": 4}}),
        ("stats", {"numbers": [1, 2, 6]}),
        ("stats", {"numbers": []}),
        ("histogram", {"words": ["a", "b", "a"]}),
        ("spell", {"number": 2026}),
        ("crash", {}),
        ("no_such_tool", {}),
    ):
        out.append(await attempt(session.call_tool(name, arguments)))
    return out


async def library(session: Any) -> list[Any]:
    from mcp import types

    out = [
        plain((await session.list_resources()).resources),
        plain((await session.list_resource_templates()).resourceTemplates),
        plain((await session.list_prompts()).prompts),
    ]
    for uri in (
        "library://catalogue",
        "library://logo.png",
        "library://books/dune",
        "library://books/emma/year",
        "library://missing",
    ):
        out.append(await attempt(session.read_resource(uri)))
    for name, arguments in (("review", {"key": "ubik"}), ("discuss", {"key": "emma"})):
        out.append(await attempt(session.get_prompt(name, arguments)))
    reference = types.PromptReference(type="ref/prompt", name="review")
    out.append(plain(await session.complete(reference, {"name": "key", "value": "d"})))
    return out


async def assistant(session: Any) -> list[Any]:
    progress: list[Any] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    out = [plain((await session.list_tools()).tools)]
    out.append(plain(await session.call_tool("count_to", {"n": 2}, progress_callback=on_progress)))
    out.append(progress)
    for name, arguments in (("quote_motto", {}), ("greet", {}), ("haiku", {"topic": "rain"})):
        out.append(plain(await session.call_tool(name, arguments)))
    whoami = plain(await session.call_tool("whoami", {}))
    out.append(whoami["content"][0]["text"].startswith("request "))
    return out


def callbacks(logs: list[Any]) -> dict[str, Any]:
    from mcp import types

    async def sampling(context: Any, params: Any) -> Any:
        text = params.messages[0].content.text
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"on {text}"), model="m"
        )

    async def elicitation(context: Any, params: Any) -> Any:
        return types.ElicitResult(action="accept", content={"name": "Ada", "coffee": False})

    async def on_log(params: Any) -> None:
        logs.append((params.level, params.data))

    return {
        "sampling_callback": sampling,
        "elicitation_callback": elicitation,
        "logging_callback": on_log,
    }


def compare(name: str, script: Callable[[Any], Awaitable[list[Any]]]) -> bool:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamablehttp_client
    from mcp.shared.memory import create_connected_server_and_client_session

    from connscale.server.loading import load_app
    from connscale.testing import serve_in_thread

    surface: Any = load_app(f"{SERVERS / name}.py:mcp")
    logs: list[Any] = []
    answers: dict[str, list[Any]] = {}
    with serve_in_thread(surface, engine="epoll", transport="http") as server:

        async def run() -> None:
            lowlevel = surface.server._mcp_server
            async with create_connected_server_and_client_session(
                lowlevel, **callbacks(logs)
            ) as session:
                answers["sdk"] = await script(session)
            url = f"http://127.0.0.1:{server.port}/mcp"
            async with (
                streamablehttp_client(url) as (read, write, _),
                ClientSession(read, write, **callbacks(logs)) as session,
            ):
                await session.initialize()
                answers["connscale"] = await script(session)

        anyio.run(run)
    sdk, ours = answers["sdk"], answers["connscale"]
    half = len(logs) // 2
    same = sdk == ours and logs[:half] == logs[half:]
    print(f"{name} ({surface!r}): {'SAME' if same else 'DIFFERENT'}")
    for expected, got in zip(sdk, ours, strict=True):
        if expected != got:
            print("  sdk:      ", json.dumps(expected)[:300])
            print("  connscale:", json.dumps(got)[:300])
    return same


def main() -> int:
    import importlib.metadata

    version = importlib.metadata.version("mcp")
    if not version.startswith("1."):
        print(f"this checks SDK 1.x; mcp {version} is installed here", file=sys.stderr)
        return 2
    print(f"mcp {version}")
    results = [
        compare(name, script)
        for name, script in (
            ("calculator", calculator),
            ("library", library),
            ("assistant", assistant),
        )
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
