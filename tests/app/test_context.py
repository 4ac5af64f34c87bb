"""Context against a fake CallContext: what it sends, what it refuses, what it returns."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pytest
from app_fakes import FakeCall

from connscale.app import App, Context, ElicitResult, Root, UserMessage, titled
from connscale.app._context import elicitation_schema
from connscale.errors import (
    ClientCapabilityError,
    ClientError,
    ClientRequestError,
    ClientResponseError,
    ConfigurationError,
    ProtocolError,
)

ALL_CAPABILITIES = {"sampling": {"tools": {}}, "elicitation": {}, "roots": {"listChanged": True}}


def context(call: FakeCall, **app_options: Any) -> Context:
    return Context(call, App("test", **app_options))


def run(awaitable: Any) -> Any:
    return asyncio.run(awaitable)


# -- who and what ------------------------------------------------------------------------------


def test_properties_come_from_the_call() -> None:
    call = FakeCall(
        request_id="r1", progress_token=5, session_id="s", protocol_version="2025-06-18"
    )
    ctx = context(call)
    assert ctx.request_id == "r1"
    assert ctx.progress_token == 5
    assert ctx.session_id == "s"
    assert ctx.protocol_version == "2025-06-18"
    assert ctx.client.name == "fake-client"
    assert "r1" in repr(ctx)


# -- progress ------------------------------------------------------------------------------------


def test_progress_only_with_a_token() -> None:
    silent = FakeCall()
    run(context(silent).report_progress(1, 10, "step"))
    assert silent.notifications == []

    call = FakeCall(progress_token="tok")
    ctx = context(call)
    run(ctx.report_progress(1, 10, "step"))
    run(ctx.report_progress(0.5))
    assert call.notifications == [
        (
            "notifications/progress",
            {"progressToken": "tok", "progress": 1, "total": 10, "message": "step"},
        ),
        ("notifications/progress", {"progressToken": "tok", "progress": 0.5}),
    ]


# -- logging -------------------------------------------------------------------------------------


def test_log_sends_level_logger_and_data() -> None:
    call = FakeCall()
    ctx = context(call)
    run(ctx.log("notice", {"k": 1}, logger="db"))
    run(ctx.debug("d"))
    run(ctx.info("i"))
    run(ctx.warning("w"))
    run(ctx.error("e", logger="x"))
    assert call.notifications == [
        ("notifications/message", {"level": "notice", "data": {"k": 1}, "logger": "db"}),
        ("notifications/message", {"level": "debug", "data": "d"}),
        ("notifications/message", {"level": "info", "data": "i"}),
        ("notifications/message", {"level": "warning", "data": "w"}),
        ("notifications/message", {"level": "error", "data": "e", "logger": "x"}),
    ]


@pytest.mark.parametrize(
    ("wanted", "sent"),
    [
        ("debug", ["debug", "info", "warning", "error", "emergency"]),
        ("info", ["info", "warning", "error", "emergency"]),
        ("warning", ["warning", "error", "emergency"]),
        ("emergency", ["emergency"]),
    ],
)
def test_log_honours_the_session_level(wanted: str, sent: list[str]) -> None:
    call = FakeCall(log_level=wanted)
    ctx = context(call)
    for level in ("debug", "info", "warning", "error", "emergency"):
        run(ctx.log(level, level))
    assert [params["level"] for _, params in call.notifications] == sent


def test_unknown_log_level_is_a_configuration_error() -> None:
    call = FakeCall()
    with pytest.raises(ConfigurationError, match="verbose"):
        run(context(call).log("verbose", "x"))
    assert call.notifications == []


# -- sampling ------------------------------------------------------------------------------------

SAMPLED = {
    "role": "assistant",
    "content": {"type": "text", "text": "4"},
    "model": "m1",
    "stopReason": "endTurn",
}


def test_sample_sends_the_request_and_returns_a_typed_result() -> None:
    call = FakeCall(capabilities=ALL_CAPABILITIES, answers={"sampling/createMessage": SAMPLED})
    result = run(
        context(call).sample(
            "2+2?",
            max_tokens=10,
            system_prompt="be brief",
            temperature=0.1,
            stop_sequences=["\n"],
            model_preferences={"hints": [{"name": "claude"}]},
            include_context="none",
            metadata={"k": "v"},
        )
    )
    assert result.text == "4"
    assert result.model == "m1"
    assert result.stop_reason == "endTurn"
    ((method, params, timeout),) = call.requests
    assert method == "sampling/createMessage"
    assert timeout == 60.0  # the App's default
    assert params == {
        "messages": [{"role": "user", "content": {"type": "text", "text": "2+2?"}}],
        "maxTokens": 10,
        "systemPrompt": "be brief",
        "temperature": 0.1,
        "stopSequences": ["\n"],
        "modelPreferences": {"hints": [{"name": "claude"}]},
        "includeContext": "none",
        "metadata": {"k": "v"},
    }


def test_sample_message_forms_and_timeout_override() -> None:
    call = FakeCall(capabilities=ALL_CAPABILITIES, answers={"sampling/createMessage": SAMPLED})
    messages = [
        "first",
        UserMessage("second"),
        {"role": "assistant", "content": {"type": "text", "text": "third"}},
    ]
    run(context(call, request_timeout=5.0).sample(messages, max_tokens=1, timeout=1.5))
    ((_, params, timeout),) = call.requests
    assert timeout == 1.5
    assert [m["content"]["text"] for m in params["messages"]] == ["first", "second", "third"]
    assert [m["role"] for m in params["messages"]] == ["user", "user", "assistant"]


def test_sample_tools_need_the_sampling_tools_capability() -> None:
    call = FakeCall(capabilities={"sampling": {}}, answers={"sampling/createMessage": SAMPLED})
    with pytest.raises(ClientCapabilityError, match="tools"):
        run(context(call).sample("x", max_tokens=1, tools=[{"name": "t", "inputSchema": {}}]))
    assert call.requests == []


@pytest.mark.parametrize("capabilities", [None, {}, {"roots": {}}, {"sampling": True}])
def test_sample_needs_the_capability(capabilities: Any) -> None:
    call = FakeCall(capabilities=capabilities)
    with pytest.raises(ClientCapabilityError, match="sampling"):
        run(context(call).sample("x", max_tokens=1))
    assert call.requests == []


@pytest.mark.parametrize("answer", [{}, {"role": "robot", "content": {}, "model": "m"}, "text"])
def test_malformed_sampling_answer(answer: Any) -> None:
    call = FakeCall(capabilities=ALL_CAPABILITIES, answers={"sampling/createMessage": answer})
    with pytest.raises(ClientResponseError):
        run(context(call).sample("x", max_tokens=1))


def test_client_errors_and_timeouts() -> None:
    call = FakeCall(
        capabilities=ALL_CAPABILITIES,
        answers={
            "sampling/createMessage": ProtocolError("user rejected", -1, {"why": "no"}),
            "roots/list": TimeoutError(),
        },
    )
    with pytest.raises(ClientRequestError) as caught:
        run(context(call).sample("x", max_tokens=1))
    assert caught.value.code == -1
    assert caught.value.data == {"why": "no"}
    assert isinstance(caught.value, ClientError)
    with pytest.raises(TimeoutError):
        run(context(call).list_roots())


def test_no_default_timeout() -> None:
    call = FakeCall(capabilities=ALL_CAPABILITIES, answers={"roots/list": {"roots": []}})
    run(context(call, request_timeout=None).list_roots())
    assert call.requests == [("roots/list", None, None)]


# -- roots ---------------------------------------------------------------------------------------


def test_list_roots() -> None:
    answer = {"roots": [{"uri": "file:///a", "name": "A"}, {"uri": "file:///b"}]}
    call = FakeCall(capabilities=ALL_CAPABILITIES, answers={"roots/list": answer})
    assert run(context(call).list_roots(timeout=2)) == [Root("file:///a", "A"), Root("file:///b")]
    assert call.requests == [("roots/list", None, 2)]


def test_list_roots_refusals() -> None:
    with pytest.raises(ClientCapabilityError, match="roots"):
        run(context(FakeCall(capabilities={"sampling": {}})).list_roots())
    bad = FakeCall(capabilities=ALL_CAPABILITIES, answers={"roots/list": {"roots": "x"}})
    with pytest.raises(ClientResponseError):
        run(context(bad).list_roots())


# -- elicitation ---------------------------------------------------------------------------------


class Size(enum.Enum):  # declared out of alphabetical order: forms keep this order
    SMALL = "s"
    LARGE = "l"


class Order(msgspec.Struct):
    name: str
    quantity: int
    price: float = 1.5
    gift: bool = False
    size: Size = Size.SMALL
    flavour: Literal["vanilla", "chocolate"] = "vanilla"
    color: Annotated[Literal["r", "g"], titled({"r": "Red", "g": "Green"})] = "r"
    legacy: Annotated[Literal["a", "b"], titled({"a": "Alpha", "b": "Beta"}, legacy=True)] = "a"
    toppings: list[Literal["sauce", "nuts"]] = []
    extras: list[Annotated[Literal["x", "y"], titled([("x", "Extra X"), ("y", "Extra Y")])]] = []
    note: str | None = None
    email: Annotated[str, msgspec.Meta(description="Where to write")] = ""


def test_elicitation_schema_covers_sep_1034_and_1330() -> None:
    schema = elicitation_schema(Order)
    assert schema["type"] == "object"
    assert schema["required"] == ["name", "quantity"]
    properties = schema["properties"]
    assert properties["name"] == {"type": "string"}
    assert properties["quantity"] == {"type": "integer"}
    assert properties["price"] == {"type": "number", "default": 1.5}
    assert properties["gift"] == {"type": "boolean", "default": False}
    assert properties["size"] == {"type": "string", "enum": ["s", "l"], "default": "s"}
    assert properties["flavour"] == {
        "type": "string",
        "enum": ["vanilla", "chocolate"],
        "default": "vanilla",
    }
    assert properties["color"] == {
        "type": "string",
        "oneOf": [{"const": "r", "title": "Red"}, {"const": "g", "title": "Green"}],
        "default": "r",
    }
    assert properties["legacy"] == {
        "type": "string",
        "enum": ["a", "b"],
        "enumNames": ["Alpha", "Beta"],
        "default": "a",
    }
    assert properties["toppings"] == {
        "type": "array",
        "items": {"type": "string", "enum": ["sauce", "nuts"]},
        "default": [],
    }
    assert properties["extras"] == {
        "type": "array",
        "items": {
            "anyOf": [{"const": "x", "title": "Extra X"}, {"const": "y", "title": "Extra Y"}]
        },
        "default": [],
    }
    assert properties["note"] == {"type": "string"}
    assert properties["email"] == {"type": "string", "description": "Where to write", "default": ""}


@pytest.mark.sdk
def test_elicitation_schema_is_valid_for_the_official_types() -> None:
    types = pytest.importorskip("mcp_types._v2025_11_25")
    pydantic = pytest.importorskip("pydantic")
    adapter = pydantic.TypeAdapter(types.PrimitiveSchemaDefinition)
    schema = elicitation_schema(Order)
    types.RequestedSchema.model_validate(schema)
    for name, prop in schema["properties"].items():
        assert adapter.validate_python(prop), name


@dataclasses.dataclass
class Contact:
    email: str
    age: int = 30


class Survey(TypedDict):
    happy: bool


def test_elicitation_schema_from_dataclass_and_typeddict() -> None:
    assert elicitation_schema(Contact)["properties"]["age"] == {"type": "integer", "default": 30}
    assert elicitation_schema(Survey) == {
        "type": "object",
        "properties": {"happy": {"type": "boolean"}},
        "required": ["happy"],
    }


class Nested(msgspec.Struct):
    contact: Contact


class FreeList(msgspec.Struct):
    words: list[str]


class Opaque(msgspec.Struct):
    thing: object


@pytest.mark.parametrize("bad", [Nested, FreeList, Opaque, int, dict, "x"])
def test_elicitation_schema_refuses_non_primitive_forms(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        elicitation_schema(bad)
    assert "\n" not in str(caught.value)  # one line, whatever msgspec said


def test_elicit_accept_converts_to_the_schema_type() -> None:
    answer = {"action": "accept", "content": {"name": "Ann", "quantity": 2, "size": "l"}}
    call = FakeCall(capabilities=ALL_CAPABILITIES, answers={"elicitation/create": answer})
    result = run(context(call).elicit("Your order?", Order, timeout=9))
    assert isinstance(result, ElicitResult)
    assert result.accepted
    assert result.data == Order("Ann", 2, size=Size.LARGE)
    assert result.content == answer["content"]
    ((method, params, timeout),) = call.requests
    assert method == "elicitation/create"
    assert timeout == 9
    assert params["mode"] == "form"
    assert params["message"] == "Your order?"
    assert params["requestedSchema"] == elicitation_schema(Order)


@pytest.mark.parametrize("action", ["decline", "cancel"])
def test_elicit_decline_and_cancel(action: str) -> None:
    call = FakeCall(
        capabilities=ALL_CAPABILITIES, answers={"elicitation/create": {"action": action}}
    )
    result = run(context(call).elicit("?", Contact))
    assert result.action == action
    assert result.data is None
    assert not result.accepted


@pytest.mark.parametrize(
    "answer",
    [
        {"action": "accept"},
        {"action": "accept", "content": {"email": 5}},
        {"action": "maybe"},
        [],
    ],
)
def test_elicit_malformed_answers(answer: Any) -> None:
    call = FakeCall(capabilities=ALL_CAPABILITIES, answers={"elicitation/create": answer})
    with pytest.raises(ClientResponseError):
        run(context(call).elicit("?", Contact))


def test_elicit_capability_checks() -> None:
    with pytest.raises(ClientCapabilityError, match="elicitation"):
        run(context(FakeCall(capabilities={"sampling": {}})).elicit("?", Contact))
    url_only = FakeCall(capabilities={"elicitation": {"url": {}}})
    with pytest.raises(ClientCapabilityError, match="form"):
        run(context(url_only).elicit("?", Contact))
    form = FakeCall(
        capabilities={"elicitation": {"form": {}}},
        answers={"elicitation/create": {"action": "cancel"}},
    )
    assert run(context(form).elicit("?", Contact)).action == "cancel"


# -- reading the app's own resources -------------------------------------------------------------


def test_read_resource_through_the_app() -> None:
    app = App("r")

    @app.resource("test://static")
    def static() -> str:
        return "static text"

    @app.resource("test://async/{n}")
    async def dynamic(n: int) -> str:
        return f"n={n}"

    ctx = Context(FakeCall(), app)
    assert run(ctx.read_resource("test://static")) == [
        {"uri": "test://static", "mimeType": "text/plain", "text": "static text"}
    ]
    assert run(ctx.read_resource("test://async/4"))[0]["text"] == "n=4"
    with pytest.raises(ProtocolError) as caught:
        run(ctx.read_resource("test://missing"))
    assert caught.value.code == -32002
