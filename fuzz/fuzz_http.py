"""Fuzz the Streamable HTTP request path (llhttp, the connection core, the MCP handler).

The first byte picks how the input is cut into reads; a valid session token and bearer
token are available as ``{SESSION}``/``{TOKEN}`` placeholders so that mutations reach
the code behind authentication. Checks: nothing raises, every answer has a documented
status, the bytes a reader holds stay under its bound, session slots are freed.
Run: ``python fuzz/fuzz_http.py -max_total_time=180 fuzz/corpus/http``.
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
    from _targets import INITIALIZE, drive_http, make_core

_TOKEN = b"fuzz-bearer-token"


def _session_token() -> bytes:
    request = (
        b"POST /mcp HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer "
        + _TOKEN
        + b"\r\ncontent-type: application/json\r\naccept: application/json\r\n"
        + b"content-length: %d\r\n\r\n" % len(INITIALIZE)
        + INITIALIZE
    )
    core, wire = make_core(http=True, bearer_token=_TOKEN)
    core.open(0)
    core.receive(0, request)
    for line in bytes(wire.output).split(b"\r\n"):
        if line.lower().startswith(b"mcp-session-id: "):
            return line.split(b": ", 1)[1]
    raise AssertionError("initialize gave no session id")


_SESSION = _session_token()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    read_size = 1 + data[0] * 4
    stream = data[1:].replace(b"{SESSION}", _SESSION).replace(b"{TOKEN}", _TOKEN)
    chunks = [stream[i : i + read_size] for i in range(0, len(stream), read_size)]
    drive_http(chunks, bearer_token=_TOKEN)  # a fresh core each time: a DELETE does not stick


def main() -> None:
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
