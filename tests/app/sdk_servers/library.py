"""A small library written for the official MCP SDK: resources, a resource template,
prompts and a completion handler."""

import json

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.prompts.base import AssistantMessage, UserMessage
except ImportError:  # SDK 1.x
    from mcp.server.fastmcp import FastMCP as MCPServer
    from mcp.server.fastmcp.prompts.base import AssistantMessage, UserMessage
from mcp.types import Completion, PromptReference, ResourceTemplateReference

mcp = MCPServer("library")

BOOKS = {
    "dune": {"title": "Dune", "author": "Frank Herbert", "year": 1965},
    "emma": {"title": "Emma", "author": "Jane Austen", "year": 1815},
    "ubik": {"title": "Ubik", "author": "Philip K. Dick", "year": 1969},
}


@mcp.resource("library://catalogue", title="Catalogue", description="Every book's key.")
def catalogue() -> str:
    return "\n".join(sorted(BOOKS))


@mcp.resource("library://logo.png", mime_type="image/png")
def logo() -> bytes:
    """The library's logo."""
    return b"\x89PNG\r\n\x1a\n-not-really"


@mcp.resource("library://books/{key}", mime_type="application/json")
def book(key: str) -> str:
    """One book, as JSON."""
    if key not in BOOKS:
        raise ValueError(f"no book {key!r}")
    return json.dumps(BOOKS[key])


@mcp.resource("library://books/{key}/year")
def year(key: str) -> int:
    """The year a book came out."""
    return BOOKS[key]["year"]


@mcp.prompt()
def review(key: str, tone: str = "friendly") -> str:
    """Ask for a review of a book."""
    return f"Write a {tone} review of {BOOKS[key]['title']}."


@mcp.prompt(title="Discuss")
def discuss(key: str) -> list:
    """A short conversation about a book."""
    title = BOOKS[key]["title"]
    return [
        UserMessage(f"What is {title} about?"),
        AssistantMessage(f"{title} is a book by {BOOKS[key]['author']}."),
        UserMessage("Tell me more."),
    ]


@mcp.completion()
async def complete(ref, argument, context):
    if argument.name == "key":
        found = [key for key in sorted(BOOKS) if key.startswith(argument.value)]
        return Completion(values=found, total=len(found), hasMore=False)
    if isinstance(ref, PromptReference) and argument.name == "tone":
        return Completion(values=["friendly", "harsh"])
    if isinstance(ref, ResourceTemplateReference):
        return None
    return None
