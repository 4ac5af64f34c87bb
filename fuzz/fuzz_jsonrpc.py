"""Fuzz the JSON-RPC decoder and the MCP lifecycle with arbitrary frames.

Each input is split on newlines into frames handled in order by one session (first as
sent, then after a real ``initialize``). Checks: nothing raises, every reply is one
JSON-RPC response with a documented error code, tool calls can be finished, slots are freed.
Run: ``python fuzz/fuzz_jsonrpc.py -max_total_time=180 fuzz/corpus/jsonrpc``.
"""

from __future__ import annotations

import contextlib
import sys


def _instrumented() -> contextlib.AbstractContextManager[object]:
    """Coverage instrumentation for the code under test, only when run by atheris."""
    if __name__ != "__main__":
        return contextlib.nullcontext()  # imported by the test suite
    import atheris

    return atheris.instrument_imports(include=["connscale", "_targets"])


with _instrumented():
    from _targets import INITIALIZE, check_protocol_outcome, make_protocol

    from connscale.core.protocol.jsonrpc import decode_message

_protocol = make_protocol()


def test_one_input(data: bytes) -> None:
    decode_message(data)  # never raises, on any bytes
    frames = [frame for frame in data.split(b"\n") if frame]
    for prelude in ((), (INITIALIZE,)):
        slot = _protocol.open_session()
        try:
            for frame in (*prelude, *frames):
                check_protocol_outcome(_protocol, _protocol.handle_frame(slot, frame))
        finally:
            _protocol.close_session(slot)
    assert len(_protocol.table) == 0


def main() -> None:
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
