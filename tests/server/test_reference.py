"""The reference application rebuilt as an App: the same tools, arguments and result shapes
as the hand-built registry."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from connscale import App, __version__
from connscale.core.protocol.surface import ClientInfo
from connscale.server.experts import CircleOfExperts, ExpertAnswer, FunctionExpert
from connscale.server.reference import build_reference_app


class Call:
    """The least CallContext: the reference tools never talk back to the client."""

    request_id = 1
    progress_token = None
    client = ClientInfo("2025-11-25")
    log_level = None

    def notify(self, method: str, params: Any = None) -> None:
        raise AssertionError("the reference tools send no notifications")

    async def request(
        self, method: str, params: Any = None, *, timeout: Any = None, key: Any = None
    ) -> Any:
        raise AssertionError("the reference tools send no requests")


def call(app: App, name: str, arguments: Any) -> Any:
    outcome = app.call_tool(name, arguments, Call())
    if inspect.isawaitable(outcome):

        async def wait() -> Any:
            return await outcome

        return asyncio.run(wait())
    return outcome


def test_identity_and_tools() -> None:
    app = build_reference_app(name="ref", version="9")
    assert (app.info.name, app.info.version) == ("ref", "9")
    assert build_reference_app().info.version == __version__
    assert [d["name"] for d in app.listing("tools")] == [
        "echo",
        "consult_experts",
        "get_expert_responses",
    ]
    assert app.capabilities() == {"logging": {}, "tools": {"listChanged": True}}


def test_descriptors_keep_the_reference_tools_shape() -> None:
    """Same argument names, required lists and descriptions as the hand-built tools had."""
    ours = {d["name"]: d for d in build_reference_app().listing("tools")}
    expected = {
        "echo": (["text"], {"text": None}),
        "consult_experts": (
            ["question"],
            {
                "question": "What to ask the circle",
                "experts": "Names of the experts to ask (default: all)",
            },
        ),
        "get_expert_responses": (["query_id"], {"query_id": None}),
    }
    for name, (required, properties) in expected.items():
        schema = ours[name]["inputSchema"]
        assert schema["required"] == required
        assert set(schema["properties"]) == set(properties)
        for prop, description in properties.items():
            assert schema["properties"][prop].get("description") == description
        assert "outputSchema" not in ours[name]


def test_echo() -> None:
    app = build_reference_app()
    assert call(app, "echo", {"text": "hi"}) == {
        "content": [{"type": "text", "text": "hi"}],
        "isError": False,
    }
    missing = call(app, "echo", {})
    assert missing["isError"] and "'text'" in missing["content"][0]["text"]


def test_consult_then_collect() -> None:
    app = build_reference_app()

    async def scenario() -> tuple[Any, Any]:
        consulted = await app.call_tool("consult_experts", {"question": "Is water wet?"}, Call())
        query_id = consulted["structuredContent"]["query_id"]
        return consulted, app.call_tool("get_expert_responses", {"query_id": query_id}, Call())

    consulted, collected = asyncio.run(scenario())
    assert not consulted["isError"]
    text = consulted["content"][0]["text"]
    assert "confidence" in text and consulted["structuredContent"]["query_id"] in text
    assert set(consulted["structuredContent"]) == {
        "query_id",
        "question",
        "answer",
        "confidence",
        "responses",
        "timed_out",
    }
    assert not collected["isError"]
    assert len(collected["structuredContent"]["responses"]) == len(
        consulted["structuredContent"]["responses"]
    )
    assert collected["content"][0]["text"].startswith('{"query_id"')


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"question": 5},
        {"question": "q", "experts": "all"},
        {"question": "q", "experts": ["nobody"]},
    ],
)
def test_consult_bad_arguments_are_tool_errors(arguments: dict[str, Any]) -> None:
    result = call(build_reference_app(), "consult_experts", arguments)
    assert result["isError"]
    assert result["content"][0]["type"] == "text"


def test_unknown_query_id_is_a_tool_error() -> None:
    result = call(build_reference_app(), "get_expert_responses", {"query_id": "nope"})
    assert result == {
        "content": [{"type": "text", "text": "no responses retained for query nope"}],
        "isError": True,
    }


def test_slow_expert_times_out_but_the_tool_answers() -> None:
    async def slow(question: str) -> ExpertAnswer:
        await asyncio.sleep(10)
        return ExpertAnswer("late", 1.0)

    def quick(question: str) -> ExpertAnswer:
        return ExpertAnswer("now", 0.9)

    circle = CircleOfExperts(
        [FunctionExpert("slow", slow), FunctionExpert("quick", quick)], timeout=0.05
    )
    result = call(build_reference_app(circle), "consult_experts", {"question": "q"})
    assert result["structuredContent"]["timed_out"] == ["slow"]
    assert result["structuredContent"]["answer"] == "now"
