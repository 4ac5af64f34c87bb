"""The reference application as an ``App`` like any other: ``echo`` and the circle of experts.

Same tools, argument names and result shapes as the hand-built registry it replaces: text
content, ``consult_experts`` and ``get_expert_responses`` also return ``structuredContent``,
and a tool's own failures (bad arguments, unknown experts, an expired query id) are
``isError`` results.
"""

from __future__ import annotations

import json

from connscale._version import __version__
from connscale.app import App, ToolResult
from connscale.errors import ConfigurationError
from connscale.server.experts import CircleOfExperts

__all__ = ["build_reference_app"]


def build_reference_app(
    circle: CircleOfExperts | None = None, *, name: str = "connscale", version: str = __version__
) -> App:
    """An App serving ``echo``, ``consult_experts`` and ``get_expert_responses``."""
    circle = circle if circle is not None else CircleOfExperts()
    app = App(name, version=version)

    @app.tool()
    def echo(text: str) -> str:
        """Return the given text unchanged."""
        return text

    @app.tool()
    async def consult_experts(question: str, experts: list[str] | None = None) -> ToolResult:
        """Ask a circle of experts a question; returns the aggregated answer with each
        expert's confidence and a query_id.

        Args:
            question: What to ask the circle
            experts: Names of the experts to ask (default: all)
        """
        try:
            consultation = await circle.consult(question, experts=experts)
        except ConfigurationError as exc:
            return ToolResult([str(exc)], is_error=True)
        lines = [f"{consultation.answer} (confidence {consultation.confidence:.2f})"]
        lines.extend(
            f"- {response.expert}: {response.text} ({response.confidence:.2f})"
            for response in consultation.responses
        )
        lines.append(f"query_id: {consultation.query_id}")
        return ToolResult(["\n".join(lines)], structured_content=consultation.to_dict())

    @app.tool()
    def get_expert_responses(query_id: str) -> ToolResult:
        """Return the collected expert responses for a query_id while they are retained."""
        responses = circle.collected(query_id)
        if responses is None:
            return ToolResult([f"no responses retained for query {query_id}"], is_error=True)
        payload = {"query_id": query_id, "responses": [r.to_dict() for r in responses]}
        return ToolResult([json.dumps(payload)], structured_content=payload)

    return app
