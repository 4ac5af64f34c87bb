"""Distributed load on a connscale (or any MCP) server with Locust: each user holds many
connections through connscale's low-memory client.

    pip install 'connscale[locust]'
    # one machine, a web UI on :8089
    locust -f examples/locustfile.py --host tcp://127.0.0.1:8000
    # a master and workers on many machines, headless, 20 users x 500 connections
    locust -f examples/locustfile.py --master --headless --expect-workers 2 \\
        --host http://10.0.0.10:8000/mcp -u 20 -r 2 --run-time 10m \\
        --connscale-summary held.json
    locust -f examples/locustfile.py --worker --master-host 10.0.0.5     # on each worker

The target is Locust's --host: tcp://HOST:PORT for MCP over TCP, http://HOST:PORT/mcp for
Streamable HTTP (ws://HOST:PORT/PATH for WebSocket; --connscale-protocol names any other
protocol of `connscale loadgen`). Every --connscale-* option overrides the class attribute
of the same name below and reaches the workers from the master: --connscale-connections
(per user), --connscale-mix (ping, echo, list, experts for MCP), --connscale-concurrency,
--connscale-sources (local addresses, comma-separated). In Locust's figures each protocol
is a request type; "handshake" times each connection's set-up (and counts those that
failed), "held" counts connections dropped after they were up, the other names are the
requests. The master logs the connections held over all workers every 10 s, serves them
at /connscale beside its web UI, and writes them with the request totals to
--connscale-summary at exit.

Memory per connection of the server under this load: run `connscale watch --pid PID` on
the server's machine while the shape below steps through its plateaus (docs/MEASURING.md).
"""

from __future__ import annotations

import os
from typing import ClassVar

from locust import LoadTestShape, constant

from connscale.locust import ConnscaleUser


class McpUser(ConnscaleUser):
    """Holds 100 MCP sessions; every 2 s one of them pings or calls the echo tool."""

    connections = 100
    mix = "ping=0.8,echo=0.2"
    wait_time = constant(2.0)


if os.environ.get("CONNSCALE_PLATEAUS"):

    class Plateaus(LoadTestShape):
        """Users in steps held for a while each: settled plateaus for `connscale watch`.

        CONNSCALE_PLATEAUS="10,20,30,40" (users at each step) and CONNSCALE_HOLD=30
        (seconds per step, default 30); the run ends after the last step.
        """

        steps: ClassVar[list[int]] = [int(n) for n in os.environ["CONNSCALE_PLATEAUS"].split(",")]
        hold = float(os.environ.get("CONNSCALE_HOLD", "30"))

        def tick(self) -> tuple[int, float] | None:
            step = int(self.get_run_time() // self.hold)
            if step >= len(self.steps):
                return None
            return self.steps[step], float(self.steps[step])
