"""App: registration, the Surface methods, capabilities, listings, change notifications,
blocking tools in the pool and the slow-call warning driven by a fake clock."""

from __future__ import annotations

import asyncio
import inspect
import logging
import subprocess
import sys
import threading
from typing import Any

import msgspec
import pytest
from app_fakes import FakeCall, settle

from connscale.app import (
    App,
    Completion,
    CompletionArgument,
    Content,
    Context,
    EmbeddedResource,
    Icon,
    Image,
    PromptRef,
    ResourceTemplateRef,
    ToolAnnotations,
    ToolResult,
    UserMessage,
)
from connscale.clock import FakeClock
from connscale.core.protocol.surface import ServerInfo
from connscale.errors import ClientUnreachableError, ConfigurationError, ProtocolError

PNG = b"\x89PNG\r\n\x1a\n"


class Recorder:
    """A SurfaceListener that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def list_changed(self, kind: str) -> None:
        self.events.append(("list_changed", kind))

    def resource_updated(self, uri: str) -> None:
        self.events.append(("resource_updated", uri))


class Point(msgspec.Struct):
    x: int
    y: int = 0


def protocol_error(function: Any, *args: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        settle(function(*args))
    return caught.value


# -- identity ------------------------------------------------------------------------------------


def test_info() -> None:
    app = App("demo", version="2.0", title="Demo", instructions="Use it.", website_url="https://x")
    assert app.info == ServerInfo("demo", "2.0", "Demo", "Use it.", "https://x")
    assert app.name == "demo"
    assert "demo" in repr(app)


@pytest.mark.parametrize(
    "options",
    [
        {"request_timeout": 0},
        {"blocking_threads": 0},
        {"blocking_threads": True},
        {"slow_call_threshold": 0},
    ],
)
def test_bad_app_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        App("x", **options)
    with pytest.raises(ConfigurationError):
        App("")


# -- tools: registration and descriptors ---------------------------------------------------------


def test_tool_descriptor_fields() -> None:
    app = App("t")

    @app.tool(
        title="Adder",
        annotations=ToolAnnotations(read_only_hint=True),
        icons=[Icon("https://icon", mime_type="image/png")],
        meta={"team": "x"},
    )
    def add(a: int, b: int = 1) -> int:
        """Add numbers."""
        return a + b

    @app.tool(name="say", description="Say it.")
    def speak(text: str) -> str:
        return text

    add_descriptor, say_descriptor = app.listing("tools")
    assert add_descriptor == {
        "name": "add",
        "title": "Adder",
        "description": "Add numbers.",
        "inputSchema": {
            "title": "addArguments",
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}},
            "required": ["a"],
        },
        "outputSchema": {
            "type": "object",
            "properties": {"result": {"type": "integer"}},
            "required": ["result"],
        },
        "annotations": {"readOnlyHint": True},
        "icons": [{"src": "https://icon", "mimeType": "image/png"}],
        "_meta": {"team": "x"},
    }
    assert say_descriptor["name"] == "say"
    assert say_descriptor["description"] == "Say it."
    assert "outputSchema" not in say_descriptor


def test_decorators_return_the_function() -> None:
    app = App("t")

    def plain(a: int) -> int:
        return a

    assert app.tool()(plain) is plain
    assert plain(2) == 2


@pytest.mark.parametrize("decorator", ["tool", "prompt", "raw_tool", "completion"])
def test_decorator_without_parentheses_is_refused(decorator: str) -> None:
    """Regression: a bare @app.completion was a TypeError about positional arguments."""
    app = App("t")

    def function() -> None:
        pass

    options = {"input_schema": {"type": "object"}} if decorator == "raw_tool" else {}
    with pytest.raises(ConfigurationError, match="parentheses"):
        getattr(app, decorator)(function, **options)


def test_duplicate_bad_and_unknown_names() -> None:
    app = App("t")
    app.add_tool(lambda: "x", "one")
    with pytest.raises(ConfigurationError, match="already exists"):
        app.add_tool(lambda: "y", "one")
    with pytest.raises(ConfigurationError, match="tool name"):
        app.add_tool(lambda: "y", "has space")
    with pytest.raises(ConfigurationError, match="no tool"):
        app.remove_tool("two")
    with pytest.raises(ConfigurationError, match="async"):

        @app.tool(blocking=True)
        async def cannot() -> None:
            pass


# -- tools: calls -----------------------------------------------------------------------------


def test_sync_tool_answers_at_once() -> None:
    app = App("t")

    @app.tool()
    def echo(text: str) -> str:
        return text

    result = app.call_tool("echo", {"text": "hi"}, FakeCall())
    assert result == {"content": [{"type": "text", "text": "hi"}], "isError": False}


def test_async_tool_returns_a_coroutine_not_a_task() -> None:
    app = App("t")

    @app.tool()
    async def echo(text: str) -> str:
        await asyncio.sleep(0)
        return text

    async def scenario() -> Any:
        tasks_before = len(asyncio.all_tasks())
        outcome = app.call_tool("echo", {"text": "hi"}, FakeCall())
        assert inspect.iscoroutine(outcome)
        assert len(asyncio.all_tasks()) == tasks_before
        return await outcome

    assert asyncio.run(scenario())["content"][0]["text"] == "hi"


def test_invalid_arguments_are_tool_errors_even_for_async_tools() -> None:
    app = App("t")

    @app.tool()
    async def count(n: int) -> int:
        return n

    result = app.call_tool("count", {"n": "three"}, FakeCall())
    assert not inspect.isawaitable(result)
    assert result["isError"]
    assert "'n'" in result["content"][0]["text"]
    assert "Expected `int`, got `str`" in result["content"][0]["text"]


@pytest.mark.parametrize("name", ["missing", None, 3, ["unhashable"], {"a": 1}])
def test_unknown_tool_is_invalid_params(name: Any) -> None:
    error = protocol_error(App("t").call_tool, name, {}, FakeCall())
    assert error.code == -32602
    assert "Unknown tool" in str(error)


def test_raising_tool_is_an_error_result_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = App("t")

    @app.tool()
    def explode() -> str:
        raise RuntimeError("boom")

    @app.tool()
    async def explode_later() -> str:
        raise ValueError("later")

    with caplog.at_level(logging.ERROR, logger="connscale.app"):
        result = app.call_tool("explode", {}, FakeCall())
        later = settle(app.call_tool("explode_later", {}, FakeCall()))
    assert result == {
        "content": [{"type": "text", "text": "Error executing tool explode: boom"}],
        "isError": True,
    }
    assert later["isError"] and "later" in later["content"][0]["text"]
    records = [r for r in caplog.records if r.name == "connscale.app"]
    assert ["explode" in r.getMessage() for r in records] == [True, True]
    assert all(r.exc_info is not None for r in records)


def test_a_client_gone_away_is_logged_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tool waiting on its client when the client leaves: an error result (never sent,
    the call is over), an info line and no traceback, so that many leaving clients do not
    flood the log with one traceback each."""
    app = App("t")

    @app.tool()
    async def ask() -> str:
        raise ClientUnreachableError("the client disconnected")

    with caplog.at_level(logging.DEBUG, logger="connscale.app"):
        result = settle(app.call_tool("ask", {}, FakeCall()))
    assert result["isError"] and "disconnected" in result["content"][0]["text"]
    records = [r for r in caplog.records if r.name == "connscale.app"]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)]


def test_protocol_error_from_a_tool_passes_through() -> None:
    app = App("t")

    @app.tool()
    def refuse() -> str:
        raise ProtocolError("no such thing", -32602)

    assert protocol_error(app.call_tool, "refuse", {}, FakeCall()).code == -32602


def test_cancellation_is_not_swallowed() -> None:
    app = App("t")

    @app.tool()
    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        settle(app.call_tool("cancelled", {}, FakeCall()))


def test_return_value_that_breaks_the_declared_type(caplog: pytest.LogCaptureFixture) -> None:
    app = App("t")

    @app.tool()
    def point() -> Point:
        return {"x": "not a number"}  # type: ignore[return-value]

    with caplog.at_level(logging.ERROR, logger="connscale.app"):
        result = app.call_tool("point", {}, FakeCall())
    assert result["isError"]
    assert "bad return value" in result["content"][0]["text"]
    assert any("point" in r.getMessage() for r in caplog.records)


def test_structured_results() -> None:
    app = App("t")

    @app.tool()
    def point(x: int) -> Point:
        return Point(x)

    @app.tool(structured_output=False)
    def plain_point(x: int) -> Point:
        return Point(x)

    @app.tool()
    def listing() -> list[str]:
        return ["a", "b"]

    assert app.call_tool("point", {"x": 1}, FakeCall()) == {
        "content": [{"type": "text", "text": '{"x":1,"y":0}'}],
        "structuredContent": {"x": 1, "y": 0},
        "isError": False,
    }
    assert app.call_tool("plain_point", {"x": 1}, FakeCall()) == {
        "content": [{"type": "text", "text": '{"x":1,"y":0}'}],
        "isError": False,
    }
    assert app.call_tool("listing", {}, FakeCall())["structuredContent"] == {"result": ["a", "b"]}


def test_content_returns() -> None:
    app = App("t")

    @app.tool()
    def picture() -> Image:
        return Image(PNG)

    @app.tool()
    def blocks() -> list[Content | dict[str, Any]]:
        return [UserMessage("x").to_dict()["content"], Image(PNG)]

    @app.tool()
    def nothing() -> None:
        return None

    @app.tool()
    def whole() -> ToolResult:
        return ToolResult(["partial"], is_error=True)

    assert app.call_tool("picture", {}, FakeCall())["content"][0]["type"] == "image"
    assert [b["type"] for b in app.call_tool("blocks", {}, FakeCall())["content"]] == [
        "text",
        "image",
    ]
    assert app.call_tool("nothing", {}, FakeCall()) == {"content": [], "isError": False}
    assert app.call_tool("whole", {}, FakeCall()) == {
        "content": [{"type": "text", "text": "partial"}],
        "isError": True,
    }


def test_context_is_injected_into_tools() -> None:
    app = App("t")
    seen: list[Any] = []

    @app.tool()
    async def work(steps: int, ctx: Context) -> str:
        seen.append(ctx.request_id)
        for step in range(steps):
            await ctx.report_progress(step + 1, steps)
        await ctx.info("done")
        return "ok"

    call = FakeCall(request_id=11, progress_token="p")
    assert settle(app.call_tool("work", {"steps": 2}, call))["content"][0]["text"] == "ok"
    assert seen == [11]
    assert [method for method, _ in call.notifications] == [
        "notifications/progress",
        "notifications/progress",
        "notifications/message",
    ]
    assert "ctx" not in app.listing("tools")[0]["inputSchema"]["properties"]


# -- raw tools -------------------------------------------------------------------------------------


def test_raw_tool_gets_arguments_and_returns_as_is() -> None:
    app = App("t")
    received: list[Any] = []

    @app.raw_tool(input_schema={"type": "object", "properties": {"text": {"type": "string"}}})
    def raw(arguments: Any) -> dict[str, Any]:
        """Raw echo."""
        received.append(arguments)
        return {"content": [{"type": "text", "text": arguments["text"]}], "custom": 1}

    arguments = {"text": "hi"}
    assert app.call_tool("raw", arguments, FakeCall()) == {
        "content": [{"type": "text", "text": "hi"}],
        "custom": 1,
    }
    assert received[0] is arguments
    (descriptor,) = app.listing("tools")
    assert descriptor["description"] == "Raw echo."
    assert descriptor["inputSchema"]["properties"] == {"text": {"type": "string"}}
    result = app.call_tool("raw", {}, FakeCall())  # KeyError inside: still a tool error
    assert result["isError"]


def test_async_raw_tool_and_its_failures() -> None:
    app = App("t")

    async def raw(arguments: Any) -> dict[str, Any]:
        if arguments.get("fail"):
            raise RuntimeError("raw failure")
        return {"content": []}

    app.add_raw_tool(raw, input_schema={"type": "object"}, output_schema={"type": "object"})
    assert app.listing("tools")[0]["outputSchema"] == {"type": "object"}
    assert settle(app.call_tool("raw", {}, FakeCall())) == {"content": []}
    assert settle(app.call_tool("raw", {"fail": True}, FakeCall()))["isError"]
    with pytest.raises(ConfigurationError, match="input_schema"):
        app.add_raw_tool(raw, "other", input_schema={"type": "string"})


# -- blocking tools and the slow-call warning -------------------------------------------------


def test_blocking_tool_runs_in_the_pool() -> None:
    app = App("t", blocking_threads=2)
    threads: list[threading.Thread] = []

    @app.tool(blocking=True)
    def heavy(n: int) -> int:
        threads.append(threading.current_thread())
        return n * 2

    assert app._executor is None  # created lazily, on the first blocking call

    async def scenario() -> tuple[Any, threading.Thread]:
        outcome = app.call_tool("heavy", {"n": 21}, FakeCall())
        assert inspect.isawaitable(outcome)
        return await outcome, threading.current_thread()

    result, loop_thread = asyncio.run(scenario())
    assert result["structuredContent"] == {"result": 42}
    assert threads and threads[0] is not loop_thread
    assert threads[0].name.startswith("connscale-blocking")
    assert app._executor is not None and app._executor._max_workers == 2
    app.close()
    assert app._executor is None


def test_blocking_tool_failure_is_an_error_result() -> None:
    app = App("t")

    @app.tool(blocking=True)
    def heavy(n: int) -> int:
        raise OSError("disk")

    result = settle(app.call_tool("heavy", {"n": 1}, FakeCall()))
    assert result["isError"] and "disk" in result["content"][0]["text"]
    invalid = app.call_tool("heavy", {"n": "one"}, FakeCall())  # refused before the pool
    assert invalid["isError"] and "'n'" in invalid["content"][0]["text"]
    app.close()


def test_slow_sync_tool_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    app = App("t", timer=clock, slow_call_threshold=0.25)

    @app.tool()
    def crunch(seconds: float) -> str:
        clock.advance(seconds)  # the fake clock stands in for work on the loop
        return "done"

    with caplog.at_level(logging.WARNING, logger="connscale.app"):
        app.call_tool("crunch", {"seconds": 0.1}, FakeCall())
        assert caplog.records == []
        app.call_tool("crunch", {"seconds": 0.3}, FakeCall())
        app.call_tool("crunch", {"seconds": 0.5}, FakeCall())
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "'crunch'" in message and "blocking=True" in message and "0.300" in message


def test_slow_sync_resource_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    app = App("t", timer=clock)

    @app.resource("test://slow")
    def slow() -> str:
        clock.advance(1)
        return "x"

    with caplog.at_level(logging.WARNING, logger="connscale.app"):
        app.read_resource("test://slow", FakeCall())
    assert "resource 'slow'" in caplog.records[0].getMessage()


# -- resources -------------------------------------------------------------------------------------


def resource_app() -> App:
    app = App("r")

    @app.resource("test://static-text", title="Static", description="Some text.", size=4)
    def static_text() -> str:
        return "text"

    @app.resource("test://static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        return PNG

    @app.resource("test://template/{id}/data", mime_type="application/json")
    def template(id: int) -> dict[str, int]:
        """Data for an id."""
        return {"id": id}

    @app.resource("test://async/{name}")
    async def asynchronous(name: str, ctx: Context) -> str:
        return f"{name}@{ctx.request_id}"

    @app.resource("test://broken")
    def broken() -> str:
        raise RuntimeError("disk gone")

    return app


def test_resource_listings() -> None:
    app = resource_app()
    assert app.listing("resources") == (
        {
            "uri": "test://static-text",
            "name": "static_text",
            "title": "Static",
            "description": "Some text.",
            "size": 4,
        },
        {"uri": "test://static-binary", "name": "static_binary", "mimeType": "image/png"},
        {"uri": "test://broken", "name": "broken"},
    )
    assert app.listing("resourceTemplates") == (
        {
            "uriTemplate": "test://template/{id}/data",
            "name": "template",
            "description": "Data for an id.",
            "mimeType": "application/json",
        },
        {"uriTemplate": "test://async/{name}", "name": "asynchronous"},
    )


def test_read_static_and_templated_resources() -> None:
    app = resource_app()
    call = FakeCall(request_id="q")
    assert app.read_resource("test://static-text", call) == {
        "contents": [{"uri": "test://static-text", "mimeType": "text/plain", "text": "text"}]
    }
    assert app.read_resource("test://static-binary", call) == {
        "contents": [
            {"uri": "test://static-binary", "mimeType": "image/png", "blob": "iVBORw0KGgo="}
        ]
    }
    assert app.read_resource("test://template/42/data", call) == {
        "contents": [
            {"uri": "test://template/42/data", "mimeType": "application/json", "text": '{"id":42}'}
        ]
    }
    assert settle(app.read_resource("test://async/x", call))["contents"][0]["text"] == "x@q"


def test_resource_errors(caplog: pytest.LogCaptureFixture) -> None:
    app = resource_app()
    missing = protocol_error(app.read_resource, "test://nothing", FakeCall())
    assert (missing.code, missing.data) == (-32002, {"uri": "test://nothing"})
    bad_variable = protocol_error(app.read_resource, "test://template/abc/data", FakeCall())
    assert bad_variable.code == -32602
    assert "'id'" in str(bad_variable)
    assert protocol_error(app.read_resource, 42, FakeCall()).code == -32602
    with caplog.at_level(logging.ERROR, logger="connscale.app"):
        broken = protocol_error(app.read_resource, "test://broken", FakeCall())
    assert (broken.code, broken.data) == (-32603, {"uri": "test://broken"})
    assert "disk gone" in str(broken)
    assert caplog.records[0].exc_info is not None


def test_resource_registration_is_checked() -> None:
    app = App("r")
    with pytest.raises(ConfigurationError, match="variables"):
        app.add_resource(lambda id: id, "test://{other}", name="x")
    with pytest.raises(ConfigurationError, match="variables"):
        app.add_resource(lambda id: id, "test://static", name="x")
    with pytest.raises(ConfigurationError, match="default"):
        app.add_resource(lambda q: q, "test://search{?q}", name="x")
    with pytest.raises(ConfigurationError, match="URI"):
        app.resource(lambda: "x")  # type: ignore[arg-type]
    app.add_resource(lambda q=None: str(q), "test://search{?q}", name="search")
    assert app.read_resource("test://search?q=a", FakeCall())["contents"][0]["text"] == "a"
    assert app.read_resource("test://search", FakeCall())["contents"][0]["text"] == "None"


def test_blocking_resource() -> None:
    app = App("r")

    @app.resource("test://heavy/{n}", blocking=True)
    def heavy(n: int) -> str:
        return threading.current_thread().name

    outcome = app.read_resource("test://heavy/1", FakeCall())
    assert inspect.isawaitable(outcome)
    assert settle(outcome)["contents"][0]["text"].startswith("connscale-blocking")
    app.close()


def test_remove_resources_and_templates() -> None:
    app = resource_app()
    app.remove_resource("test://static-text")
    app.remove_resource("test://template/{id}/data")
    assert [d["uri"] for d in app.listing("resources")] == ["test://static-binary", "test://broken"]
    assert [d["uriTemplate"] for d in app.listing("resourceTemplates")] == ["test://async/{name}"]
    assert protocol_error(app.read_resource, "test://template/1/data", FakeCall()).code == -32002
    with pytest.raises(ConfigurationError):
        app.remove_resource("test://static-text")


# -- prompts ---------------------------------------------------------------------------------------


def prompt_app() -> App:
    app = App("p")

    @app.prompt(title="Simple")
    def simple() -> str:
        """A simple prompt."""
        return "Say hello."

    @app.prompt()
    def with_arguments(topic: str, count: int = 3) -> list[Any]:
        """Ask about a topic.

        Args:
            topic: What to ask about
            count: How many questions
        """
        return [
            UserMessage(f"{count} questions on {topic}"),
            {"role": "assistant", "content": "Sure."},
        ]

    @app.prompt()
    async def with_media(ctx: Context) -> list[Any]:
        return [
            UserMessage(EmbeddedResource("test://doc", text="document")),
            UserMessage(Image(PNG)),
        ]

    @app.prompt()
    def broken() -> str:
        raise RuntimeError("template error")

    return app


def test_prompt_listing() -> None:
    simple, with_arguments, with_media, _ = prompt_app().listing("prompts")
    assert simple == {
        "name": "simple",
        "title": "Simple",
        "description": "A simple prompt.",
        "arguments": [],
    }
    assert with_arguments["arguments"] == [
        {"name": "topic", "description": "What to ask about", "required": True},
        {"name": "count", "description": "How many questions", "required": False},
    ]
    assert with_media["arguments"] == []


def test_get_prompt() -> None:
    app = prompt_app()
    assert app.get_prompt("simple", {}, FakeCall()) == {
        "messages": [{"role": "user", "content": {"type": "text", "text": "Say hello."}}],
        "description": "A simple prompt.",
    }
    messages = app.get_prompt("with_arguments", {"topic": "tea", "count": "2"}, FakeCall())
    assert messages["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "2 questions on tea"}},
        {"role": "assistant", "content": {"type": "text", "text": "Sure."}},
    ]
    media = settle(app.get_prompt("with_media", None, FakeCall()))["messages"]  # type: ignore[arg-type]
    assert media[0]["content"]["type"] == "resource"
    assert media[1]["content"]["type"] == "image"


def test_prompt_errors(caplog: pytest.LogCaptureFixture) -> None:
    app = prompt_app()
    assert protocol_error(app.get_prompt, "nothing", {}, FakeCall()).code == -32602
    assert protocol_error(app.get_prompt, ["x"], {}, FakeCall()).code == -32602
    missing = protocol_error(app.get_prompt, "with_arguments", {}, FakeCall())
    assert missing.code == -32602
    assert "'topic'" in str(missing)
    bad = protocol_error(app.get_prompt, "with_arguments", {"topic": "t", "count": "x"}, FakeCall())
    assert bad.code == -32602 and "'count'" in str(bad)
    with caplog.at_level(logging.ERROR, logger="connscale.app"):
        assert protocol_error(app.get_prompt, "broken", {}, FakeCall()).code == -32603
    app.remove_prompt("simple")
    assert protocol_error(app.get_prompt, "simple", {}, FakeCall()).code == -32602


# -- completions -----------------------------------------------------------------------------------


PROMPT_REF = {"type": "ref/prompt", "name": "with_arguments"}
TEMPLATE_REF = {"type": "ref/resource", "uri": "test://template/{id}/data"}


def test_completion_without_a_handler() -> None:
    app = prompt_app()
    assert "completions" not in app.capabilities()
    assert app.complete(PROMPT_REF, {"name": "topic", "value": "t"}, {}, FakeCall()) == {
        "completion": {"values": [], "total": 0, "hasMore": False}
    }


def test_completion_handler_gets_typed_arguments() -> None:
    app = prompt_app()

    @app.resource("test://template/{id}/data")
    def template(id: int) -> str:
        return str(id)

    seen: list[Any] = []

    @app.completion()
    def complete(ref: Any, argument: CompletionArgument, context: dict[str, str]) -> list[str]:
        seen.append((ref, argument, context))
        return [v for v in ("tea", "toast", "coffee") if v.startswith(argument.value)]

    assert app.capabilities()["completions"] == {}
    result = app.complete(PROMPT_REF, {"name": "topic", "value": "t"}, {"count": "2"}, FakeCall())
    assert result == {"completion": {"values": ["tea", "toast"], "total": 2, "hasMore": False}}
    app.complete(TEMPLATE_REF, {"name": "id", "value": ""}, None, FakeCall())  # type: ignore[arg-type]
    assert seen == [
        (PromptRef("with_arguments"), CompletionArgument("topic", "t"), {"count": "2"}),
        (ResourceTemplateRef("test://template/{id}/data"), CompletionArgument("id", ""), {}),
    ]


def test_completion_results_are_capped_at_100() -> None:
    app = prompt_app()
    app.set_completion(lambda ref, argument, context: [str(i) for i in range(250)])
    completion = app.complete(PROMPT_REF, {"name": "topic", "value": ""}, {}, FakeCall())
    assert len(completion["completion"]["values"]) == 100
    assert completion["completion"]["total"] == 250
    assert completion["completion"]["hasMore"] is True

    async def partial(ref: Any, argument: Any, context: Any, ctx: Context) -> Completion:
        return Completion(["a"], total=10, has_more=True)

    app.set_completion(partial)
    done = settle(app.complete(PROMPT_REF, {"name": "topic", "value": ""}, {}, FakeCall()))
    assert done == {"completion": {"values": ["a"], "total": 10, "hasMore": True}}
    app.set_completion(None)
    assert "completions" not in app.capabilities()


@pytest.mark.parametrize(
    ("ref", "argument", "context_arguments"),
    [
        ({"type": "ref/prompt", "name": "nothing"}, {"name": "a", "value": ""}, {}),
        ({"type": "ref/resource", "uri": "test://none/{x}"}, {"name": "a", "value": ""}, {}),
        ({"type": "ref/other", "name": "x"}, {"name": "a", "value": ""}, {}),
        ({"name": "with_arguments"}, {"name": "a", "value": ""}, {}),
        (PROMPT_REF, {"name": "a"}, {}),
        (PROMPT_REF, {"name": "a", "value": 3}, {}),
        (PROMPT_REF, {"name": "a", "value": ""}, {"k": 1}),
        ("garbage", None, None),
    ],
)
def test_bad_completion_requests(ref: Any, argument: Any, context_arguments: Any) -> None:
    app = prompt_app()
    app.set_completion(lambda *args: [])
    error = protocol_error(app.complete, ref, argument, context_arguments, FakeCall())
    assert error.code == -32602


def test_failing_completion_handler_is_internal_error() -> None:
    app = prompt_app()
    app.set_completion(lambda *args: [1, 2])
    assert protocol_error(
        app.complete, PROMPT_REF, {"name": "a", "value": ""}, {}, FakeCall()
    ).code == (-32603)


# -- capabilities, listings, notifications -------------------------------------------------------


def test_capabilities_advertise_what_the_app_has() -> None:
    app = App("c")
    assert app.capabilities() == {"logging": {}}
    app.add_resource(lambda id: id, "test://{id}", name="template")
    assert app.capabilities() == {
        "logging": {},
        "resources": {"subscribe": True, "listChanged": True},
    }
    app.add_tool(lambda: "x", "tool")
    app.add_prompt(lambda: "x", "prompt")
    assert app.capabilities() == {
        "logging": {},
        "tools": {"listChanged": True},
        "resources": {"subscribe": True, "listChanged": True},
        "prompts": {"listChanged": True},
    }
    app.remove_tool("tool")  # once advertised, a kind stays (its list may fill again)
    assert "tools" in app.capabilities()


def test_listings_are_cached_until_a_change() -> None:
    app = App("c")
    app.add_tool(lambda: "x", "one")
    first = app.listing("tools")
    assert app.listing("tools") is first
    capabilities = app.capabilities()
    assert app.capabilities() is capabilities
    app.add_tool(lambda: "y", "two")
    assert app.listing("tools") is not first
    assert [d["name"] for d in app.listing("tools")] == ["one", "two"]
    assert app.listing("prompts") == ()
    with pytest.raises(ConfigurationError):
        app.listing("widgets")  # type: ignore[arg-type]


def test_watchers_hear_every_change(caplog: pytest.LogCaptureFixture) -> None:
    app = App("w")
    app.add_tool(lambda: "x", "before")  # before anyone watches: nobody to tell
    recorder = Recorder()

    class Broken:
        def list_changed(self, kind: str) -> None:
            raise RuntimeError("listener bug")

        def resource_updated(self, uri: str) -> None:
            raise RuntimeError("listener bug")

    app.watch(Broken())  # type: ignore[arg-type]
    app.watch(recorder)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="connscale.app"):
        app.add_tool(lambda: "x", "tool")
        app.remove_tool("tool")
        app.add_resource(lambda: "x", "test://static", name="static")
        app.add_resource(lambda id: id, "test://{id}", name="template")
        app.remove_resource("test://{id}")
        app.add_prompt(lambda: "x", "prompt")
        app.remove_prompt("prompt")
        app.notify_resource_updated("test://static")
    assert recorder.events == [
        ("list_changed", "tools"),
        ("list_changed", "tools"),
        ("list_changed", "resources"),
        ("list_changed", "resourceTemplates"),
        ("list_changed", "resourceTemplates"),
        ("list_changed", "prompts"),
        ("list_changed", "prompts"),
        ("resource_updated", "test://static"),
    ]
    assert len(caplog.records) == 8  # the broken listener, logged each time
    app.unwatch(recorder)  # type: ignore[arg-type]
    app.add_tool(lambda: "x", "after")
    assert len(recorder.events) == 8


def test_pydantic_is_never_imported_by_the_app() -> None:
    script = (
        "import sys\n"
        "from connscale import App, Context\n"
        "app = App('x')\n"
        "@app.tool()\n"
        "def f(a: int, ctx: Context) -> dict[str, int]:\n"
        "    return {'a': a}\n"
        "app.call_tool('f', {'a': 1}, None)\n"
        "app.call_tool('f', {'a': 'bad'}, None)\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
