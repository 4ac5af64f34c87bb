"""Multi-round-trip tools written for the official MCP SDK 2.x: a resolver that elicits
(``Elicit[T]``), a tool that returns an ``InputRequiredResult`` itself, and one that adds a
tool at run time."""

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import (
    ElicitRequest,
    ElicitRequestFormParams,
    InputRequiredResult,
)
from pydantic import BaseModel

mcp = MCPServer("rounds")


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    return Elicit("Your name?", Name)


@mcp.tool()
async def hello(who: Annotated[Name, Resolve(ask_name)]) -> str:
    """Greet whoever answers."""
    return f"hello {who.name}"


@mcp.tool()
async def manual(ctx: Context) -> str | InputRequiredResult:
    """Ask for a colour the 2026-07-28 way, by hand."""
    answers = ctx.input_responses or {}
    if "colour" not in answers:
        return InputRequiredResult(
            input_requests={
                "colour": ElicitRequest(
                    params=ElicitRequestFormParams(
                        message="Colour?",
                        requested_schema={
                            "type": "object",
                            "properties": {"name": {"type": "string"}},
                        },
                    )
                )
            },
            request_state="asked-once",
        )
    return f"{answers['colour'].content['name']} (state {ctx.request_state})"


@mcp.tool()
def grow(name: str) -> str:
    """Add a tool called ``name``."""

    def extra() -> str:
        return "grown"

    mcp.add_tool(extra, name=name)
    return "added"
