"""Every MCP server feature connscale serves, in one app: a tour, and the fixtures of the
official MCP conformance suite (whose scenarios name these tools, resources and prompts).

Serve it::

    connscale serve --transport http --port 8000 --app examples/everything.py:app
    connscale serve --transport stdio --app examples/everything.py:app

Each piece below is the smallest example of one feature; read them top to bottom.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated, Literal

import msgspec

from connscale import (
    App,
    Audio,
    Content,
    Context,
    EmbeddedResource,
    Image,
    Message,
    ToolResult,
    UserMessage,
)
from connscale.app import titled

#: A 1x1 PNG and a tiny WAV, as the conformance suite expects them.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV = base64.b64decode("UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=")

app = App(
    "connscale-everything",
    version="1.0.0",
    instructions="A tour of every MCP server feature, and the conformance suite's fixtures.",
)


# -- tools: content of every kind ---------------------------------------------------------------


@app.tool()
def test_simple_text() -> str:
    """Return a simple text response."""
    return "This is a simple text response for testing."


@app.tool()
def test_image_content() -> Image:
    """Return an image (a 1x1 PNG)."""
    return Image(PNG, format="png")


@app.tool()
def test_audio_content() -> Audio:
    """Return audio (a tiny WAV)."""
    return Audio(WAV, format="wav")


@app.tool()
def test_embedded_resource() -> EmbeddedResource:
    """Return an embedded text resource."""
    return EmbeddedResource(
        uri="test://embedded-resource",
        mime_type="text/plain",
        text="This is an embedded resource content.",
    )


@app.tool()
def test_multiple_content_types() -> list[Content]:
    """Return text, an image and an embedded resource together."""
    return [
        "Multiple content types test:",
        Image(PNG, format="png"),
        EmbeddedResource(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}),
        ),
    ]


@app.tool()
def test_error_handling() -> ToolResult:
    """Fail on purpose: a tool's own failure is a result with isError, not a protocol error."""
    return ToolResult(["This tool intentionally returns an error for testing"], is_error=True)


class Point(msgspec.Struct):
    x: float
    y: float


@app.tool()
def midpoint(a: Point, b: Point) -> Point:
    """Structured output: the result has an outputSchema and comes back as structuredContent.

    Args:
        a: one end
        b: the other end
    """
    return Point((a.x + b.x) / 2, (a.y + b.y) / 2)


@app.tool(blocking=True)
def checksum(text: str) -> str:
    """A blocking (CPU-bound or sync I/O) tool: it runs in a thread, never on the event loop."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# -- tools that talk to the client while they run (Context) ------------------------------------


@app.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Send three log messages while running."""
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message)
        await asyncio.sleep(0.05)
    return "Tool with logging executed successfully"


@app.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Report progress 0, 50 and 100 of 100 (when the request carries a progress token)."""
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"Completed step {step} of 100")
        await asyncio.sleep(0.05)
    return str(ctx.progress_token)


@app.tool()
async def test_sampling(prompt: str, ctx: Context) -> str:
    """Ask the client's model (sampling/createMessage).

    Args:
        prompt: The prompt to send to the LLM
    """
    answer = await ctx.sample(prompt, max_tokens=100)
    return f"LLM response: {answer.text}"


class Reply(msgspec.Struct):
    response: Annotated[str, msgspec.Meta(description="User's response")] = ""


@app.tool()
async def test_elicitation(message: str, ctx: Context) -> str:
    """Ask the user a question (elicitation/create).

    Args:
        message: The message to show the user
    """
    result = await ctx.elicit(message, Reply)
    return f"User response: action={result.action}, content={json.dumps(result.content)}"


class Profile(msgspec.Struct):
    """Form fields with defaults (SEP-1034)."""

    name: str = "John Doe"
    age: int = 30
    score: float = 95.5
    status: Literal["active", "inactive", "pending"] = "active"
    verified: bool = True


@app.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Elicit a form whose fields carry defaults."""
    result = await ctx.elicit("Please review your information", Profile)
    return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"


Option = Literal["option1", "option2", "option3"]
Value = Literal["value1", "value2", "value3"]


class Choices(msgspec.Struct, rename="camel"):
    """Every kind of choice (SEP-1330); the fields go on the wire in camelCase."""

    untitled_single: Option
    titled_single: Annotated[
        Value,
        titled({"value1": "First Option", "value2": "Second Option", "value3": "Third Option"}),
    ]
    legacy_enum: Annotated[
        Literal["opt1", "opt2", "opt3"],
        titled({"opt1": "Option One", "opt2": "Option Two", "opt3": "Option Three"}, legacy=True),
    ]
    untitled_multi: Annotated[list[Option], msgspec.Meta(min_length=1, max_length=3)]
    titled_multi: Annotated[
        list[
            Annotated[
                Value,
                titled(
                    {"value1": "First Choice", "value2": "Second Choice", "value3": "Third Choice"}
                ),
            ]
        ],
        msgspec.Meta(min_length=1, max_length=3),
    ]


@app.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Elicit single and multiple choices, with and without titles."""
    result = await ctx.elicit("Please choose", Choices)
    return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"


@app.raw_tool(
    input_schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"},
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": False,
    },
    description="Tool with JSON Schema 2020-12 features",
)
def json_schema_2020_12_tool(arguments: dict[str, object]) -> dict[str, object]:
    """A raw tool: its schema is given verbatim, its arguments and result are plain dicts."""
    return {"content": [{"type": "text", "text": json.dumps(arguments)}], "isError": False}


# -- resources ------------------------------------------------------------------------------------


@app.resource("test://static-text", mime_type="text/plain", description="A static text resource")
def static_text() -> str:
    return "This is the content of the static text resource."


@app.resource("test://static-binary", mime_type="image/png", description="A static binary one")
def static_binary() -> bytes:
    return PNG


@app.resource("test://template/{id}/data", mime_type="application/json", description="Data by id")
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@app.resource(
    "test://watched-resource", mime_type="text/plain", description="Subscribe to watch it change"
)
def watched() -> str:
    return "Watched resource content"


@app.tool()
def touch_watched_resource() -> str:
    """Tell the subscribers of test://watched-resource that it changed."""
    app.notify_resource_updated("test://watched-resource")
    return "notified"


# -- prompts --------------------------------------------------------------------------------------


@app.prompt()
def test_simple_prompt() -> str:
    """A simple prompt without arguments."""
    return "This is a simple prompt for testing."


@app.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt with two required arguments.

    Args:
        arg1: First test argument
        arg2: Second test argument
    """
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@app.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:  # noqa: N803
    """A prompt that embeds a resource.

    Args:
        resourceUri: URI of the resource to embed
    """
    return [
        UserMessage(
            EmbeddedResource(
                uri=resourceUri,
                mime_type="text/plain",
                text="Embedded resource content for testing.",
            )
        ),
        UserMessage("Please process the embedded resource above."),
    ]


@app.prompt()
def test_prompt_with_image() -> list[Message]:
    """A prompt with an image."""
    return [
        UserMessage(Image(PNG, format="png")),
        UserMessage("Please analyze the image above."),
    ]


# -- completions and run-time changes -----------------------------------------------------------


@app.completion()
def complete(ref: object, argument: object, context_arguments: dict[str, str]) -> list[str]:
    """Suggest values for prompt arguments and template variables (none here)."""
    return []


@app.tool()
def add_a_tool(name: str) -> str:
    """Add a tool at run time: clients are told the tool list changed.

    Args:
        name: the new tool's name
    """

    def added() -> str:
        return f"I am {name}, added at run time."

    added.__doc__ = f"A tool named {name}, added at run time."
    app.add_tool(added, name=name)
    return f"added {name}"


# -- the stateless revision (2026-07-28) ----------------------------------------------------------
# The same Context calls serve both eras. In the handshake era ctx.elicit() and friends are
# requests to the client while the tool runs; in 2026-07-28 there are none: the call answers
# `input_required` with the questions, the client retries with the answers, and the function
# runs again, this time receiving them (so code before the question runs once per round).


class Name(msgspec.Struct):
    name: str


class Confirmation(msgspec.Struct):
    ok: bool


class Color(msgspec.Struct):
    color: str


class UserContext(msgspec.Struct):
    context: str


@app.tool()
async def test_missing_capability(ctx: Context) -> str:
    """Needs the client's sampling capability: without it the request fails with -32021."""
    answer = await ctx.sample("Say hello", max_tokens=10)
    return answer.text or ""


@app.tool()
async def test_streaming_elicitation(ctx: Context) -> str:
    """Streams a progress notification, then answers (never a request to the client)."""
    await ctx.report_progress(1, 1, "streaming")
    return "Streaming complete"


@app.tool()
async def test_logging_tool(ctx: Context) -> str:
    """Logs, which reaches the client only when its request asked for a log level."""
    await ctx.info("Logging evaluated")
    return "Logging evaluated"


@app.tool()
def test_trigger_tool_change() -> str:
    """Tell listening clients that the tool list changed."""
    app.notify_list_changed("tools")
    return "tools changed"


@app.tool()
def test_trigger_prompt_change() -> str:
    """Tell listening clients that the prompt list changed."""
    app.notify_list_changed("prompts")
    return "prompts changed"


@app.tool()
def test_x_mcp_header(
    region: Annotated[
        str,
        msgspec.Meta(
            description="Mirrored into the Mcp-Param-Region header",
            extra_json_schema={"x-mcp-header": "Region"},
        ),
    ] = "<none>",
) -> str:
    """An argument an HTTP client also sends as a header (Mcp-Param-Region)."""
    return f"region={region}"


@app.tool()
async def test_input_required_result_elicitation(ctx: Context) -> str:
    """Ask the user's name."""
    answer = await ctx.elicit("What is your name?", Name, key="user_name")
    return f"Hello, {answer.data.name}!" if answer.data else f"No name: {answer.action}"


@app.tool()
async def test_input_required_result_sampling(ctx: Context) -> str:
    """Ask the client's model a question."""
    answer = await ctx.sample(
        "What is the capital of France?", max_tokens=100, key="capital_question"
    )
    return f"The model says: {answer.text}"


@app.tool()
async def test_input_required_result_list_roots(ctx: Context) -> str:
    """Ask the client for its roots."""
    roots = await ctx.list_roots(key="client_roots")
    return "Roots: " + ", ".join(root.uri for root in roots)


@app.tool()
async def test_input_required_result_request_state(ctx: Context) -> str:
    """Ask for a confirmation; the answer comes back with the sealed requestState."""
    answer = await ctx.elicit("Please confirm", Confirmation, key="confirm")
    return "state-ok" if answer.data and answer.data.ok else "state-not-confirmed"


@app.tool()
async def test_input_required_result_multiple_inputs(ctx: Context) -> str:
    """Ask three things at once: a name, a greeting from the model, the roots."""
    name, greeting, roots = await asyncio.gather(
        ctx.elicit("What is your name?", Name, key="user_name"),
        ctx.sample("Generate a greeting", max_tokens=50, key="greeting"),
        ctx.list_roots(key="client_roots"),
    )
    who = name.data.name if name.data else "someone"
    return f"{greeting.text} {who} ({len(roots)} roots)"


@app.tool()
async def test_input_required_result_multi_round(ctx: Context) -> str:
    """Ask two things, one round after the other."""
    name = await ctx.elicit("Step 1: What is your name?", Name, key="step1")
    color = await ctx.elicit("Step 2: What is your favorite color?", Color, key="step2")
    return f"{name.data.name if name.data else '?'} likes {color.data.color if color.data else '?'}"


@app.tool()
async def test_input_required_result_tampered_state(ctx: Context) -> str:
    """Ask for a confirmation; a retry with a changed requestState is refused."""
    answer = await ctx.elicit("Please confirm", Confirmation, key="confirm")
    return f"confirmed={answer.data.ok if answer.data else False}"


@app.tool()
async def test_input_required_result_capabilities(ctx: Context) -> str:
    """Ask only what the client declared it can answer."""
    declared = ctx.client.capabilities or {}
    if "elicitation" in declared:
        answer = await ctx.elicit("What is your name?", Name, key="user_name")
        return f"Hello, {answer.data.name if answer.data else '?'}!"
    if "sampling" in declared:
        sampled = await ctx.sample("Say hello", max_tokens=20, key="greeting")
        return sampled.text or ""
    return "nothing to ask"


@app.prompt()
async def test_input_required_result_prompt(ctx: Context) -> str:
    """A prompt that first asks the user for its context."""
    answer = await ctx.elicit(
        "What context should the prompt use?", UserContext, key="user_context"
    )
    return f"Use this context: {answer.data.context if answer.data else 'none'}"
