"""The reference MCP application: a tool registry with ``echo`` and the circle of experts.

Tools are plain functions (sync or async) with an MCP descriptor. A sync tool answers in
the same callback that read its request (no task, no future); an async tool runs as a task.
A tool's own failures (bad arguments, an expert that raises) come back as a result with
``isError: true`` as MCP asks, so the model can see them; only bugs become JSON-RPC errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connscale.core.protocol.surface import CallContext, ListKind, ServerInfo, SurfaceListener
from connscale.errors import ConfigurationError, ProtocolError
from connscale.server.experts import CircleOfExperts, Consultation

__all__ = [
    "RegistrySurface",
    "Tool",
    "ToolRegistry",
    "build_registry",
    "read_token_file",
    "text_result",
]

ToolResult = Mapping[str, Any]
ToolFunction = Callable[[dict[str, Any]], ToolResult | Awaitable[ToolResult]]


def text_result(text: str, *, structured: object = None, is_error: bool = False) -> dict[str, Any]:
    """An MCP ``CallToolResult`` with one text block (and structured content when given)."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": is_error}
    if structured is not None:
        result["structuredContent"] = structured
    return result


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: its MCP descriptor fields and the function that runs it."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    function: ToolFunction

    def descriptor(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        }


class ToolRegistry:
    """Tools by name; ``invoke`` is the engines' ``ToolInvoker``."""

    __slots__ = ("_tools",)

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools or ():
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ConfigurationError(f"two tools are named {tool.name!r}")
        self._tools[tool.name] = tool

    def descriptors(self) -> list[dict[str, Any]]:
        return [tool.descriptor() for tool in self._tools.values()]

    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def invoke(self, name: str, arguments: dict[str, Any]) -> ToolResult | Awaitable[ToolResult]:
        """Run tool ``name`` (the protocol checked it exists)."""
        return self._tools[name].function(arguments)


class RegistrySurface:
    """A ``ToolRegistry`` served as a surface: tools only, fixed at start."""

    def __init__(self, registry: ToolRegistry, info: ServerInfo) -> None:
        self._registry = registry
        self._info = info
        self._descriptors = registry.descriptors()

    @property
    def info(self) -> ServerInfo:
        return self._info

    def capabilities(self) -> Mapping[str, Any]:
        return {"tools": {"listChanged": False}}

    def listing(self, kind: ListKind) -> list[dict[str, Any]]:
        return self._descriptors if kind == "tools" else []

    def call_tool(
        self, name: str, arguments: Mapping[str, Any], context: CallContext
    ) -> ToolResult | Awaitable[ToolResult]:
        if name not in self._registry.names():
            raise ProtocolError(f"unknown tool: {name[:64]!r}", -32602)
        return self._registry.invoke(name, dict(arguments))

    def read_resource(self, uri: str, context: CallContext) -> Any:
        raise ProtocolError("resources are not served", -32601)

    def get_prompt(self, name: str, arguments: Mapping[str, str], context: CallContext) -> Any:
        raise ProtocolError("prompts are not served", -32601)

    def complete(
        self,
        ref: Mapping[str, Any],
        argument: Mapping[str, Any],
        context_arguments: Mapping[str, str],
        context: CallContext,
    ) -> Any:
        raise ProtocolError("completions are not served", -32601)

    def watch(self, listener: SurfaceListener) -> None:
        pass  # nothing changes at run time


_QUESTION_SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "description": "What to ask the circle"},
        "experts": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Names of the experts to ask (default: all)",
        },
    },
    "required": ["question"],
}


def _echo(arguments: dict[str, Any]) -> ToolResult:
    text = arguments.get("text")
    if not isinstance(text, str):
        return text_result("echo needs a string argument 'text'", is_error=True)
    return text_result(text)


def build_registry(circle: CircleOfExperts | None = None) -> ToolRegistry:
    """The reference tools: ``echo``, ``consult_experts`` and ``get_expert_responses``."""
    circle = circle if circle is not None else CircleOfExperts()

    async def consult(arguments: dict[str, Any]) -> ToolResult:
        question = arguments.get("question")
        experts = arguments.get("experts")
        if not isinstance(question, str):
            return text_result("consult_experts needs a string argument 'question'", is_error=True)
        if experts is not None and (
            not isinstance(experts, list) or not all(isinstance(name, str) for name in experts)
        ):
            return text_result("'experts' must be a list of expert names", is_error=True)
        try:
            consultation: Consultation = await circle.consult(question, experts=experts)
        except ConfigurationError as exc:
            return text_result(str(exc), is_error=True)
        payload = consultation.to_dict()
        lines = [f"{consultation.answer} (confidence {consultation.confidence:.2f})"]
        lines.extend(
            f"- {response.expert}: {response.text} ({response.confidence:.2f})"
            for response in consultation.responses
        )
        lines.append(f"query_id: {consultation.query_id}")
        return text_result("\n".join(lines), structured=payload)

    def collected(arguments: dict[str, Any]) -> ToolResult:
        query_id = arguments.get("query_id")
        if not isinstance(query_id, str):
            return text_result("get_expert_responses needs a string 'query_id'", is_error=True)
        responses = circle.collected(query_id)
        if responses is None:
            return text_result(f"no responses retained for query {query_id}", is_error=True)
        payload = {"query_id": query_id, "responses": [r.to_dict() for r in responses]}
        return text_result(json.dumps(payload), structured=payload)

    return ToolRegistry(
        [
            Tool(
                "echo",
                "Return the given text unchanged.",
                {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                },
                _echo,
            ),
            Tool(
                "consult_experts",
                "Ask a circle of experts a question; returns the aggregated answer with each "
                "expert's confidence and a query_id.",
                _QUESTION_SCHEMA,
                consult,
            ),
            Tool(
                "get_expert_responses",
                "Return the collected expert responses for a query_id while they are retained.",
                {
                    "type": "object",
                    "properties": {"query_id": {"type": "string"}},
                    "required": ["query_id"],
                },
                collected,
            ),
        ]
    )


#: Characters of an RFC 6750 bearer token (``b64token``): safe in a header, no spaces.
_TOKEN_CHARACTERS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="
)
MIN_TOKEN_BYTES = 16


def read_token_file(path: str | os.PathLike[str]) -> bytes:
    """The bearer token in ``path`` (surrounding whitespace dropped), checked for shape.

    Errors name the file, never its content: the token must not reach logs or terminals.
    """
    try:
        with open(path, "rb") as file:
            token = file.read(4097).strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the token file {path}: {exc.strerror}") from None
    if not MIN_TOKEN_BYTES <= len(token) <= 4096:
        raise ConfigurationError(
            f"the token in {path} must be {MIN_TOKEN_BYTES} to 4096 characters long"
        )
    if not set(token) <= _TOKEN_CHARACTERS:
        raise ConfigurationError(
            f"the token in {path} may only hold letters, digits and -._~+/= (RFC 6750)"
        )
    return token
