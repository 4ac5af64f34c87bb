"""The SDK adapter's own cost per ``tools/call``, in process (no transport).

``python -m benchmarks.sdk_call [--calls N]`` loads tests/app/sdk_servers/calculator.py
and times ``add`` two ways on one event loop: through ``SdkSurface.call_tool`` (what
connscale runs per call: the SDK's own validation, call and conversion, plus the adapter)
and through the SDK's ``MCPServer.call_tool`` alone. Medians of five rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from connscale.core.protocol.surface import ClientInfo
from connscale.server.loading import load_app

CALCULATOR = Path(__file__).resolve().parents[1] / "tests" / "app" / "sdk_servers" / "calculator.py"


class _Call:
    """The smallest ``CallContext``: a handshake-era client, no progress token."""

    request_id = 1
    progress_token = None
    client = ClientInfo(protocol_version="2025-11-25", name="bench", version="1")
    log_level = None

    def notify(self, method: str, params: Any = None) -> None:
        pass


async def _rounds(calls: int) -> tuple[float, float]:
    surface: Any = load_app(f"{CALCULATOR}:mcp")
    context = _Call()
    arguments = {"a": 1, "b": 2}
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(200):
        await surface.call_tool("add", arguments, context)
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            await surface.call_tool("add", arguments, context)
        ours.append((time.perf_counter() - started) / calls)
        started = time.perf_counter()
        for _ in range(calls):
            await surface.server.call_tool("add", arguments)
        bare.append((time.perf_counter() - started) / calls)
    return statistics.median(ours), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    ours, bare = asyncio.run(_rounds(args.calls))
    print(f"SdkSurface.call_tool:  {ours * 1e6:7.1f} us per call")
    print(f"MCPServer.call_tool:   {bare * 1e6:7.1f} us per call (the SDK alone)")


if __name__ == "__main__":
    main()
