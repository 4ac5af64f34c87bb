"""Garbage in (hypothesis): every App entry point answers with a result, an ``isError`` tool
result, or ProtocolError -32602 / -32002; never any other exception."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal

import msgspec
from app_fakes import FakeCall, settle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connscale.app import App, Completion, Context
from connscale.errors import ProtocolError

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


class Point(msgspec.Struct):
    x: int
    y: int = 0


@dataclasses.dataclass
class Window:
    width: float
    title: str = ""


app = App("garbage")


@app.tool()
def echo(text: str) -> str:
    return text


@app.tool()
def divide(a: float, b: float = 1.0) -> float:
    return a / b  # b == 0 raises: an isError result


@app.tool()
async def shapes(
    point: Point,
    window: Window | None = None,
    mode: Mode = Mode.FAST,
    tags: list[str] = [],  # noqa: B006
    flag: Literal["a", "b"] = "a",
    *,
    ctx: Context,
) -> Point:
    await ctx.report_progress(1)
    return point


@app.tool(blocking=True)
def counts(words: dict[str, int]) -> int:
    return sum(words.values())


@app.raw_tool(input_schema={"type": "object"})
def raw(arguments: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": str(arguments["text"])}]}


@app.resource("test://static-text")
def static_text() -> str:
    return "static"


@app.resource("test://template/{id}/data")
def template(id: int) -> dict[str, int]:
    return {"id": id}


@app.resource("test://files/{+path}")
async def files(path: str) -> str:
    return path


@app.resource("test://search{?q,limit}")
def search(q: str = "", limit: int = 10) -> list[str]:
    return [q] * min(limit, 3)


@app.prompt()
def greet(name: str, times: int = 1) -> str:
    return f"hi {name} " * times


@app.prompt()
async def pick(choice: Literal["x", "y"], ctx: Context) -> list[Any]:
    return [{"role": "user", "content": choice}]


@app.completion()
def complete(ref: Any, argument: Any, context_arguments: Any) -> Completion:
    return Completion([argument.value + "1", argument.value + "2"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
tool_names = st.sampled_from(["echo", "divide", "shapes", "counts", "raw", "nope"]) | json_values
argument_names = st.sampled_from(
    ["text", "a", "b", "point", "window", "mode", "tags", "flag", "words", "ctx", "x"]
)
arguments = st.dictionaries(argument_names, json_values, max_size=5) | json_values


def check_tool_result(result: Any) -> None:
    assert isinstance(result, dict)
    assert isinstance(result.get("content"), list)


@BOUNDED
@given(tool_names, arguments)
def test_call_tool_with_garbage(name: Any, given_arguments: Any) -> None:
    try:
        result = settle(app.call_tool(name, given_arguments, FakeCall(progress_token=1)))
    except ProtocolError as exc:
        assert exc.code == -32602
        return
    check_tool_result(result)
    if name not in ("echo", "divide", "shapes", "counts", "raw"):
        raise AssertionError("an unknown tool must be refused")


@BOUNDED
@given(
    st.one_of(
        json_values,
        st.sampled_from(
            [
                "test://static-text",
                "test://template/{}/data",
                "test://files/{}",
                "test://search?{}",
                "test://template/{}",
            ]
        ).flatmap(lambda uri: st.text(max_size=30).map(uri.format)),
    )
)
def test_read_resource_with_garbage(uri: Any) -> None:
    try:
        result = settle(app.read_resource(uri, FakeCall()))
    except ProtocolError as exc:
        assert exc.code in (-32602, -32002)
        if exc.code == -32002:
            assert exc.data == {"uri": uri}
        return
    assert isinstance(result["contents"], list) and result["contents"]
    assert all(item["uri"] == uri for item in result["contents"])


@BOUNDED
@given(
    st.sampled_from(["greet", "pick", "none"]) | json_values,
    st.dictionaries(st.sampled_from(["name", "times", "choice", "z"]), json_values, max_size=3)
    | json_values,
)
def test_get_prompt_with_garbage(name: Any, given_arguments: Any) -> None:
    try:
        result = settle(app.get_prompt(name, given_arguments, FakeCall()))
    except ProtocolError as exc:
        assert exc.code == -32602
        return
    assert isinstance(result["messages"], list)


references = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["ref/prompt", "ref/resource", "ref/other"]),
            "name": st.sampled_from(["greet", "pick", "x"]) | json_values,
            "uri": st.sampled_from(["test://template/{id}/data", "test://x"]) | json_values,
        }
    ),
)
completion_arguments = json_values | st.fixed_dictionaries(
    {"name": st.text(max_size=5) | json_values, "value": st.text(max_size=5) | json_values}
)


@BOUNDED
@given(references, completion_arguments, json_values)
def test_complete_with_garbage(ref: Any, argument: Any, context_arguments: Any) -> None:
    try:
        result = settle(app.complete(ref, argument, context_arguments, FakeCall()))
    except ProtocolError as exc:
        assert exc.code == -32602
        return
    completion = result["completion"]
    assert all(isinstance(value, str) for value in completion["values"])
    assert completion["total"] >= len(completion["values"])


def teardown_module() -> None:
    app.close()
