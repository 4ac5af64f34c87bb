"""A calculator written for the official MCP SDK: sync and async tools, pydantic arguments,
structured and unstructured output, and tools that fail."""

import asyncio
from typing import Annotated

from pydantic import BaseModel, Field

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # SDK 1.x
    from mcp.server.fastmcp import FastMCP as MCPServer
    from mcp.server.fastmcp.exceptions import ToolError

mcp = MCPServer("calculator", instructions="Adds, divides and describes numbers.")


class Point(BaseModel):
    x: float
    y: float = Field(0.0, description="defaults to the x axis")


class Stats(BaseModel):
    """Summary statistics."""

    count: int
    mean: float
    largest: float


@mcp.tool()
def add(a: int, b: int = 2) -> int:
    """Add two integers."""
    return a + b


@mcp.tool(title="Divide", description="Divide a by b.")
async def divide(a: float, b: float) -> float:
    await asyncio.sleep(0)
    if b == 0:
        raise ToolError("cannot divide by zero")
    return a / b


@mcp.tool()
def midpoint(a: Point, b: Point) -> Point:
    """The point halfway between a and b."""
    return Point(x=(a.x + b.x) / 2, y=(a.y + b.y) / 2)


@mcp.tool()
async def stats(numbers: Annotated[list[float], Field(min_length=1)]) -> Stats:
    """Count, mean and largest of some numbers."""
    return Stats(count=len(numbers), mean=sum(numbers) / len(numbers), largest=max(numbers))


@mcp.tool()
def histogram(words: list[str]) -> dict[str, int]:
    """How often each word occurs."""
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return counts


@mcp.tool(structured_output=False)
def spell(number: int) -> list[str]:
    """The digits of a number, one text block each."""
    return [str(digit) for digit in str(number)]


@mcp.tool()
def crash() -> str:
    """Always fails with an unexpected error."""
    raise RuntimeError("a secret the client must not see")
