"""The app ``benchmarks.server_memory --hold`` serves: calls that stay in flight.

``wait`` runs until its session ends (a running task); ``ask`` sends the client an
``elicitation/create`` request and waits for the answer that never comes (a running task
and a pending server-to-client request). Each first sends one progress notification, so
the benchmark knows the call is running before it reads the server's memory.
"""

from __future__ import annotations

import asyncio

import msgspec

from connscale import App, Context

# An hour: the benchmark reads its plateaus long before a held request would time out.
app = App("connscale-held", request_timeout=3600.0)


class Answer(msgspec.Struct):
    """The form ``ask`` sends (a single yes/no field)."""

    ok: bool = False


@app.tool()
async def wait(ctx: Context) -> str:
    """Run until the session ends."""
    await ctx.report_progress(0)
    await asyncio.Event().wait()
    return "never"


@app.tool()
async def ask(ctx: Context) -> str:
    """Ask the client a question it never answers."""
    await ctx.report_progress(0)
    result = await ctx.elicit("Proceed?", Answer)
    return result.action
