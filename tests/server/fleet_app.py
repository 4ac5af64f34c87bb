"""The app a fleet serves in the load-balancer test: a tool that says which process answered."""

from __future__ import annotations

import os

from connscale.app import App

app = App("connscale-fleet")


@app.tool()
def whoami() -> str:
    """The pid of the server process that served this call."""
    return str(os.getpid())
