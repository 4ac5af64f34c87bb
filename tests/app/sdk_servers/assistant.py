"""An assistant written for the official MCP SDK that uses its Context: progress, logging,
elicitation, sampling, reading its own resources, and a lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel

try:
    from mcp.server.mcpserver import Context, MCPServer
except ImportError:  # SDK 1.x
    from mcp.server.fastmcp import Context
    from mcp.server.fastmcp import FastMCP as MCPServer
from mcp.types import SamplingMessage, TextContent

STARTS: list[str] = []


@asynccontextmanager
async def lifespan(server: object) -> AsyncIterator[dict[str, str]]:
    STARTS.append("started")
    yield {"greeting": "Hello"}


mcp = MCPServer("assistant", lifespan=lifespan)


class Preferences(BaseModel):
    name: str
    coffee: bool = True


@mcp.resource("assistant://motto")
def motto() -> str:
    return "Be brief."


@mcp.tool()
async def count_to(n: int, ctx: Context) -> str:
    """Count to n, reporting progress and logging as it goes."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n, f"at {i}")
    await ctx.info(f"counted to {n}")
    await ctx.debug("a detail")
    return f"counted to {n}"


@mcp.tool()
async def greet(ctx: Context) -> str:
    """Ask the user's name, then greet them."""
    answer = await ctx.elicit("Who are you?", Preferences)
    if answer.action != "accept":
        return f"no greeting ({answer.action})"
    greeting = ctx.request_context.lifespan_context["greeting"]
    drink = "coffee" if answer.data.coffee else "tea"
    return f"{greeting}, {answer.data.name}! Some {drink}?"


@mcp.tool()
async def haiku(topic: str, ctx: Context) -> str:
    """Ask the client's model for a haiku."""
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=topic))],
        max_tokens=50,
        related_request_id=ctx.request_id,
    )
    return f"haiku: {result.content.text}"


@mcp.tool()
async def quote_motto(ctx: Context) -> str:
    """Read this server's own motto resource."""
    contents = list(await ctx.read_resource("assistant://motto"))
    return f"the motto is {contents[0].content!r}"


@mcp.tool()
def whoami(ctx: Context) -> str:
    """The request id, as the SDK's Context tells it (a sync tool with a Context)."""
    return f"request {ctx.request_id}"
