"""Write an MCP server: ``connscale.App`` with tools, resources, prompts and completions.

::

    from connscale import App, Context

    app = App("demo", version="1.0.0")

    @app.tool()
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        return a + b

    @app.resource("notes://{name}")
    def note(name: str) -> str:
        return NOTES[name]

    @app.tool()
    async def slow_sum(numbers: list[float], ctx: Context) -> float:
        await ctx.report_progress(0, len(numbers))
        ...

The input schema comes from type hints and the docstring through msgspec; arguments are
validated and converted before the call; return values become MCP content (see
``connscale.app._content``). An ``App`` is a ``connscale.core.protocol.surface.Surface``:
the protocol core serves it on any engine and transport.
"""

from __future__ import annotations

from connscale.app._app import App, CompletionArgument, PromptRef, ResourceTemplateRef
from connscale.app._content import (
    Annotations,
    AssistantMessage,
    Audio,
    Completion,
    Content,
    EmbeddedResource,
    Icon,
    Image,
    Message,
    ResourceLink,
    Text,
    ToolAnnotations,
    ToolResult,
    UserMessage,
)
from connscale.app._context import Context, ElicitResult, Root, SampleResult, titled
from connscale.app._templates import UriTemplate

__all__ = [
    "Annotations",
    "App",
    "AssistantMessage",
    "Audio",
    "Completion",
    "CompletionArgument",
    "Content",
    "Context",
    "ElicitResult",
    "EmbeddedResource",
    "Icon",
    "Image",
    "Message",
    "PromptRef",
    "ResourceLink",
    "ResourceTemplateRef",
    "Root",
    "SampleResult",
    "Text",
    "ToolAnnotations",
    "ToolResult",
    "UriTemplate",
    "UserMessage",
    "titled",
]
