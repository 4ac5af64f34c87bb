"""The tool registry: echo, consult_experts and get_expert_responses, including bad arguments."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connscale.errors import ConfigurationError
from connscale.server.app import Tool, ToolRegistry, build_registry, text_result
from connscale.server.experts import CircleOfExperts, ExpertAnswer, FunctionExpert


def run(result: Any) -> Any:
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


def test_echo() -> None:
    registry = build_registry()
    assert run(registry.invoke("echo", {"text": "hi"}))["content"][0]["text"] == "hi"
    assert run(registry.invoke("echo", {}))["isError"]


def test_consult_then_collect() -> None:
    registry = build_registry()

    async def scenario() -> tuple[Any, Any]:
        consulted = await registry.invoke("consult_experts", {"question": "Is water wet?"})  # type: ignore[misc]
        query_id = consulted["structuredContent"]["query_id"]
        return consulted, registry.invoke("get_expert_responses", {"query_id": query_id})

    consulted, collected = asyncio.run(scenario())
    assert not consulted["isError"]
    assert "confidence" in consulted["content"][0]["text"]
    assert len(collected["structuredContent"]["responses"]) == len(
        consulted["structuredContent"]["responses"]
    )


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
    result = run(build_registry().invoke("consult_experts", arguments))
    assert result["isError"]


def test_slow_expert_times_out_but_the_tool_answers() -> None:
    async def slow(question: str) -> ExpertAnswer:
        await asyncio.sleep(10)
        return ExpertAnswer("late", 1.0)

    def quick(question: str) -> ExpertAnswer:
        return ExpertAnswer("now", 0.9)

    circle = CircleOfExperts(
        [FunctionExpert("slow", slow), FunctionExpert("quick", quick)], timeout=0.05
    )
    result = run(build_registry(circle).invoke("consult_experts", {"question": "q"}))
    assert result["structuredContent"]["timed_out"] == ["slow"]
    assert result["structuredContent"]["answer"] == "now"


def test_registry_refuses_duplicate_names() -> None:
    tool = Tool("t", "d", {"type": "object"}, lambda arguments: text_result("x"))
    with pytest.raises(ConfigurationError):
        ToolRegistry([tool, tool])
