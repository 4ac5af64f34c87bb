"""Servers written for the official MCP SDK, served by connscale unchanged: the official SDK
client gets the same answers from connscale as from the SDK's own server, in both protocol
eras; what connscale cannot carry is said at start."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from connscale.app.sdk import SdkSurface, is_sdk_server
from connscale.errors import AppLoadError
from connscale.server.loading import as_surface, load_app
from support import ENGINES, running

pytestmark = [
    pytest.mark.sdk,
    # The SDK marks its logging, sampling and roots deprecated for 2026-07-28.
    pytest.mark.filterwarnings("ignore:The .* capability is deprecated"),
    pytest.mark.filterwarnings("ignore:resources/subscribe is removed"),
]
pytest.importorskip("mcp.server.mcpserver")

import mcp_types  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

SERVERS = Path(__file__).resolve().parent / "sdk_servers"
Script = Callable[[Client], Awaitable[list[Any]]]
#: What the 2026-07-28 wire stamps on results and that each server fills in its own way
#: (its serverInfo stamp, caching hints).
STAMPS = ("_meta", "ttlMs", "cacheScope")


def load(name: str) -> SdkSurface:
    surface = load_app(f"{SERVERS / name}.py:mcp")
    assert isinstance(surface, SdkSurface)
    return surface


def plain(model: Any) -> Any:
    """A result as comparable JSON (what the wire carried, less the per-server stamps)."""
    if isinstance(model, list):
        return [plain(item) for item in model]
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in STAMPS:
        dumped.pop(key, None)
    return dumped


async def attempt(call: Awaitable[Any]) -> Any:
    try:
        return plain(await call)
    except MCPError as exc:
        return {"error": exc.error.message}


async def calculator(client: Client) -> list[Any]:
    out: list[Any] = [plain((await client.list_tools()).tools)]
    for name, arguments in (
        ("add", {"a": 1}),
        ("add", {"a": 40, "b": 2}),
        ("add", {"a": "one"}),
        ("divide", {"a": 1, "b": 4}),
        ("divide", {"a": 1, "b": 0}),
        ("midpoint", {"a": {"x": 0}, "b": {"x": 2, "y": 4}}),
        ("midpoint", {"a": {"x": "far"}, "b": {"x": 1}}),
        ("stats", {"numbers": [1, 2, 6]}),
        ("stats", {"numbers": []}),
        ("histogram", {"words": ["a", "b", "a"]}),
        ("spell", {"number": 2026}),
        ("crash", {}),
        ("no_such_tool", {}),
    ):
        out.append(await attempt(client.call_tool(name, arguments)))
    return out


async def library(client: Client) -> list[Any]:
    out: list[Any] = [
        plain((await client.list_resources()).resources),
        plain((await client.list_resource_templates()).resource_templates),
        plain((await client.list_prompts()).prompts),
    ]
    for uri in (
        "library://catalogue",
        "library://logo.png",
        "library://books/dune",
        "library://books/emma/year",
        "library://books/nope",
        "library://missing",
    ):
        out.append(await attempt(client.read_resource(uri)))
    for name, arguments in (
        ("review", {"key": "ubik"}),
        ("review", {"key": "dune", "tone": "harsh"}),
        ("discuss", {"key": "emma"}),
    ):
        out.append(await attempt(client.get_prompt(name, arguments)))
    prompt = mcp_types.PromptReference(type="ref/prompt", name="review")
    template = mcp_types.ResourceTemplateReference(type="ref/resource", uri="library://books/{key}")
    out.append(plain(await client.complete(prompt, {"name": "key", "value": "d"})))
    out.append(plain(await client.complete(prompt, {"name": "tone", "value": ""})))
    out.append(plain(await client.complete(template, {"name": "key", "value": ""})))
    out.append(plain(await client.complete(template, {"name": "other", "value": "x"})))
    return out


async def assistant(client: Client) -> list[Any]:
    progress: list[Any] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    out: list[Any] = [plain((await client.list_tools()).tools)]
    out.append(plain(await client.call_tool("count_to", {"n": 3}, progress_callback=on_progress)))
    out.append(progress)
    out.append(plain(await client.call_tool("quote_motto", {})))
    out.append(plain(await client.call_tool("greet", {})))
    out.append(plain(await client.call_tool("haiku", {"topic": "rain"})))
    whoami = plain(await client.call_tool("whoami", {}))
    out.append(whoami["content"][0]["text"].startswith("request "))
    return out


async def sampling(context: Any, params: Any) -> Any:
    return mcp_types.CreateMessageResult(
        role="assistant",
        content=mcp_types.TextContent(type="text", text=f"on {params.messages[0].content.text}"),
        model="test-model",
    )


async def elicitation(context: Any, params: Any) -> Any:
    assert params.requested_schema["required"] == ["name"]
    return mcp_types.ElicitResult(action="accept", content={"name": "Ada", "coffee": False})


def both(
    surface: SdkSurface, script: Script, *, mode: str, engine: str = "epoll", **client: Any
) -> tuple[list[Any], list[Any]]:
    """``script`` against the SDK's own server (in process) and against connscale (HTTP)."""
    answers: dict[str, list[Any]] = {}
    with running(engine, "http", app=surface) as server:
        url = f"http://127.0.0.1:{server.port}/mcp"

        async def run() -> None:
            with anyio.fail_after(60):
                async with Client(surface.server, mode=mode, **client) as sdk:
                    answers["sdk"] = await script(sdk)
                async with Client(url, mode=mode, **client) as ours:
                    if mode == "legacy":
                        assert ours.protocol_version == "2025-11-25"
                    else:
                        assert ours.protocol_version == "2026-07-28"
                    answers["connscale"] = await script(ours)

        anyio.run(run)
    return answers["sdk"], answers["connscale"]


# -- the same answers -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_calculator_answers_as_on_the_sdk(engine: str, mode: str) -> None:
    sdk, ours = both(load("calculator"), calculator, mode=mode, engine=engine)
    assert ours == sdk
    # And the answers are what the SDK makes of these functions, not just equal:
    assert ours[1]["structuredContent"] == {"result": 3}
    assert ours[3]["isError"] and "valid integer" in ours[3]["content"][0]["text"]
    assert ours[5]["content"][0]["text"] == "Error executing tool divide: cannot divide by zero"
    assert ours[6]["structuredContent"] == {"x": 1.0, "y": 2.0}
    assert [block["text"] for block in ours[11]["content"]] == ["2", "0", "2", "6"]
    assert "secret" not in ours[12]["content"][0]["text"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_resources_templates_prompts_and_completions_answer_as_on_the_sdk(mode: str) -> None:
    sdk, ours = both(load("library"), library, mode=mode)
    assert ours == sdk
    assert ours[4]["contents"][0]["blob"]  # bytes: a base64 blob
    assert ours[5]["contents"][0]["mimeType"] == "application/json"
    assert ours[8]["error"] == "Unknown resource: library://missing"
    assert ours[-4]["completion"]["values"] == ["dune"]


def test_a_context_user_answers_as_on_the_sdk_in_the_handshake_era() -> None:
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append((params.level, params.data))

    sdk, ours = both(
        load("assistant"),
        assistant,
        mode="legacy",
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        logging_callback=on_log,
    )
    assert ours == sdk
    assert ours[2] == [(1, 3, "at 1"), (2, 3, "at 2"), (3, 3, "at 3")]
    assert ours[4]["content"][0]["text"] == "Hello, Ada! Some tea?"  # lifespan + elicitation
    assert ours[5]["content"][0]["text"] == "haiku: on rain"
    assert logs[:2] == [("info", "counted to 3"), ("debug", "a detail")]
    assert logs[2:] == logs[:2]  # connscale sent the same as the SDK


def test_the_context_asks_through_input_required_in_the_2026_era() -> None:
    """At 2026-07-28 the SDK's own server cannot send ``ctx.elicit``'s request (there is no
    back channel); connscale asks it as an ``input_required`` round and runs the tool again."""
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append((params.level, params.data))

    surface = load("assistant")
    with running("epoll", "http", app=surface) as server:
        url = f"http://127.0.0.1:{server.port}/mcp"

        async def run() -> None:
            with anyio.fail_after(30):
                async with Client(
                    url,
                    sampling_callback=sampling,
                    elicitation_callback=elicitation,
                    logging_callback=on_log,
                    log_level="info",
                ) as client:
                    assert client.protocol_version == "2026-07-28"
                    greeted = await client.call_tool("greet", {})
                    assert greeted.content[0].text == "Hello, Ada! Some tea?"  # type: ignore[union-attr]
                    sampled = await client.call_tool("haiku", {"topic": "snow"})
                    assert sampled.content[0].text == "haiku: on snow"  # type: ignore[union-attr]
                    counted = await client.call_tool("count_to", {"n": 2})
                    assert not counted.is_error

        anyio.run(run)
    assert logs == [("info", "counted to 2")]  # the request opted in at info: no debug


# -- SDK 2.x multi-round-trip tools, changes at run time --------------------------------------


def test_sdk_resolvers_and_input_required_results_ride_connscale_rounds() -> None:
    async def elicit(context: Any, params: Any) -> Any:
        return mcp_types.ElicitResult(action="accept", content={"name": "Grace"})

    surface = load("rounds")
    with running("asyncio", "http", app=surface) as server:
        url = f"http://127.0.0.1:{server.port}/mcp"

        async def run() -> None:
            with anyio.fail_after(30):
                for mode in ("auto", "legacy"):
                    async with Client(url, mode=mode, elicitation_callback=elicit) as client:
                        hello = await client.call_tool("hello", {})
                        assert hello.content[0].text == "hello Grace"  # type: ignore[union-attr]
                async with Client(url, elicitation_callback=elicit) as client:
                    manual = await client.call_tool("manual", {})
                    assert manual.content[0].text == "Grace (state asked-once)"  # type: ignore[union-attr]
                    await client.call_tool("grow", {"name": "late_tool"})
                    names = {tool.name for tool in (await client.list_tools()).tools}
                    assert "late_tool" in names  # a change at run time reaches the listing

        anyio.run(run)


def test_a_forged_sdk_request_state_is_refused() -> None:
    surface = load("rounds")
    sealed = surface.seal_state("mine")
    assert surface.open_state(sealed) == "mine"
    assert surface.open_state({"state": "theirs", "tag": sealed["tag"]}) is None
    assert surface.open_state("mine") is None


# -- recognised, and what cannot be carried ---------------------------------------------------


def test_an_sdk_server_is_recognised_and_a_lowlevel_one_is_refused() -> None:
    from mcp.server.lowlevel import Server

    server = MCPServer("plain")
    assert is_sdk_server(server)
    assert not is_sdk_server(object())
    assert isinstance(as_surface(server), SdkSurface)
    with pytest.raises(AppLoadError, match="low-level Server"):
        as_surface(Server("lowlevel"))


def test_what_cannot_be_carried_is_said_at_start(caplog: pytest.LogCaptureFixture) -> None:
    from mcp.server.auth.settings import AuthSettings
    from starlette.responses import PlainTextResponse

    server = MCPServer("routes")

    @server.custom_route("/health", methods=["GET"])
    async def health(request: Any) -> Any:
        return PlainTextResponse("ok")

    async def custom(ctx: Any, params: Any) -> Any:
        return {}

    server._lowlevel_server.add_request_handler("acme/frobnicate", mcp_types.RequestParams, custom)
    with caplog.at_level(logging.WARNING, logger="connscale.app.sdk"):
        surface = as_surface(server, "routes.py:mcp")
    assert isinstance(surface, SdkSurface)
    assert any("'/health'" in problem for problem in surface.problems)
    assert any("acme/frobnicate" in problem for problem in surface.problems)
    assert "custom route '/health'" in caplog.text

    class Verifier:
        async def verify_token(self, token: str) -> None:
            return None

    guarded = MCPServer(
        "guarded",
        token_verifier=Verifier(),  # type: ignore[arg-type]
        auth=AuthSettings(
            issuer_url="https://auth.example",
            resource_server_url="https://mcp.example",
            validate_token_resource=False,
        ),
    )
    with pytest.raises(AppLoadError, match="OAuth"):
        as_surface(guarded, "guarded.py:mcp")


def test_the_sdk_is_not_imported_for_a_connscale_app() -> None:
    """Recognising an SDK object looks only at modules already imported."""
    import subprocess
    import sys

    code = (
        "import sys; from connscale.server.loading import as_surface; "
        "from connscale import App; as_surface(App('x')); "
        "assert not any(m == 'mcp' or m.startswith('mcp.') for m in sys.modules), 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- the file, untouched, under `connscale serve --workers 2` ---------------------------------


def test_an_untouched_sdk_file_is_served_by_two_workers(tmp_path: Path) -> None:
    from support import served

    target = f"{SERVERS / 'calculator.py'}:mcp"
    arguments = ("--transport", "http", "--port", "0", "--workers", "2", "--app", target)
    with served(tmp_path, *arguments) as (_process, ready):
        assert len(ready["pids"]) == 2
        url = f"http://127.0.0.1:{ready['port']}/mcp"
        reference = load("calculator")

        async def run() -> None:
            with anyio.fail_after(60):
                async with Client(reference.server, mode="legacy") as sdk:
                    expected = await calculator(sdk)
                for _ in range(3):  # new connections: the kernel spreads them over the workers
                    async with Client(url, mode="legacy") as ours:
                        assert await calculator(ours) == expected

        anyio.run(run)
