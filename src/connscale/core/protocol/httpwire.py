"""HTTP/1.1 requests in, responses out, sans-I/O: llhttp (through httptools) parses.

Why httptools: llhttp is the C parser behind Node.js and uvicorn's fast path; parsing a
typical MCP POST costs ~1.6 µs here against ~31 µs for the pure-Python h11. llhttp enforces
HTTP's grammar (request line, header syntax, Content-Length vs Transfer-Encoding, chunked
framing); this module adds the bounds a server holding 100K connections needs, because
llhttp buffers a header of any length:

* the request line plus headers may take at most ``max_header_bytes`` (431 beyond): checked
  on every feed while the head is incomplete, and again from the parsed sizes;
* a body may take at most ``max_body_bytes`` (413 beyond), whether declared by
  Content-Length (refused before it is read) or chunked;
* requests pipelined behind one being answered are parsed and queued up to
  ``max_queued_bytes``; past it the connection is closed after the answers owed.

An ``HttpReader`` (a parser and the request being read) exists only while a request is in
flight; finished readers go back to a small pool, since llhttp is ready for a new message
after a complete one and building a parser costs more than parsing a request.

Responses are assembled from pre-encoded pieces (status line and fixed headers): the only
variable parts are our own values, so there is nothing to escape.
"""

from __future__ import annotations

from typing import Final

import httptools

__all__ = [
    "HttpError",
    "HttpReader",
    "HttpRequest",
    "ReaderPool",
    "chunk",
    "response",
    "response_head",
]

REASONS: Final = {
    200: b"OK",
    202: b"Accepted",
    204: b"No Content",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    409: b"Conflict",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    421: b"Misdirected Request",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}
_STATUS_LINES: Final = {
    code: b"HTTP/1.1 %d %b\r\n" % (code, reason) for code, reason in REASONS.items()
}


class HttpError(Exception):
    """A request that cannot be served; answer with ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpRequest:
    """One complete request: method, target, headers (lower-case names) and body."""

    __slots__ = ("body", "headers", "keep_alive", "method", "size", "target")

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        #: Lower-case name -> value; a repeated header's values joined by ", " (RFC 9110).
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.keep_alive = True
        self.size = 0  # bytes of head and body: what the request holds while queued

    @property
    def path(self) -> bytes:
        return self.target.split(b"?", 1)[0]


class HttpReader:
    """Parses one connection's requests; completed ones wait in ``requests`` in order."""

    __slots__ = (
        "_body",
        "_head_bytes",
        "_in_head",
        "_parser",
        "_request",
        "failed",
        "max_body_bytes",
        "max_header_bytes",
        "queued_bytes",
        "requests",
    )

    def __init__(self, max_header_bytes: int, max_body_bytes: int) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._request: HttpRequest | None = None
        self._body: bytearray | None = None
        self._in_head = False
        self._head_bytes = 0
        self.requests: list[HttpRequest] = []
        self.queued_bytes = 0
        self.failed = False

    @property
    def idle(self) -> bool:
        """No request partly read and none waiting: the reader may go back to the pool."""
        return self._request is None and not self.requests and not self.failed

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Parse ``data``; completed requests are appended to ``requests``.

        Raises ``HttpError`` for a malformed or oversized request (the reader is then
        ``failed`` and must be dropped with its connection).
        """
        if self.failed:
            return
        head_before = self._in_head or self._request is None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self.failed = True
            cause = exc.__context__
            if isinstance(cause, HttpError):
                raise cause from None
            raise HttpError(400, "malformed HTTP request") from None
        except httptools.HttpParserUpgrade:
            self.failed = True
            raise HttpError(400, "protocol upgrades are not supported") from None
        except httptools.HttpParserError:
            self.failed = True
            raise HttpError(400, "malformed HTTP request") from None
        if head_before and self._in_head:
            # Still inside a head: everything fed since it began is head. llhttp would keep a
            # header of any length, so the bound is checked here, read by read.
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self.failed = True
                raise HttpError(431, "request header fields too large")

    # -- httptools callbacks (llhttp calls them from feed_data) ---------------------------------

    def on_message_begin(self) -> None:
        self._request = HttpRequest()
        self._in_head = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        request = self._request
        assert request is not None
        request.target += url
        request.size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._request
        assert request is not None
        request.size += len(name) + len(value) + 4
        if request.size > self.max_header_bytes:
            raise HttpError(431, "request header fields too large")
        key = name.lower()
        headers = request.headers
        previous = headers.get(key)
        headers[key] = value if previous is None else previous + b", " + value

    def on_headers_complete(self) -> None:
        request = self._request
        assert request is not None
        self._in_head = False
        parser = self._parser
        request.method = parser.get_method()
        request.keep_alive = parser.should_keep_alive()
        length = request.headers.get(b"content-length")
        if length is not None and int(length) > self.max_body_bytes:  # llhttp checked digits
            raise HttpError(413, "request body too large")

    def on_body(self, body: bytes) -> None:
        request = self._request
        assert request is not None
        if self._body is None:
            if len(body) > self.max_body_bytes:
                raise HttpError(413, "request body too large")
            self._body = bytearray(body)
        else:
            if len(self._body) + len(body) > self.max_body_bytes:
                raise HttpError(413, "request body too large")
            self._body += body

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None
        if self._body is not None:
            request.body = bytes(self._body)
            request.size += len(request.body)
            self._body = None
        self._request = None
        self.requests.append(request)
        self.queued_bytes += request.size

    def pop(self) -> HttpRequest | None:
        """The oldest completed request, or None."""
        if not self.requests:
            return None
        request = self.requests.pop(0)
        self.queued_bytes -= request.size
        return request


class ReaderPool:
    """Idle ``HttpReader``s kept for reuse (bounded), so a request rarely builds a parser."""

    __slots__ = ("_free", "max_body_bytes", "max_header_bytes", "max_size")

    def __init__(self, max_header_bytes: int, max_body_bytes: int, max_size: int = 256) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.max_size = max_size
        self._free: list[HttpReader] = []

    def acquire(self) -> HttpReader:
        if self._free:
            return self._free.pop()
        return HttpReader(self.max_header_bytes, self.max_body_bytes)

    def release(self, reader: HttpReader) -> None:
        """Keep ``reader`` if it finished cleanly between requests; else let it go."""
        if reader.idle and len(self._free) < self.max_size:
            self._free.append(reader)


def response_head(
    status: int, headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...] = ()
) -> bytes:
    """A status line and headers, ending with the blank line."""
    return _status_line(status) + _header_lines(headers) + b"\r\n"


def _status_line(status: int) -> bytes:
    return _STATUS_LINES.get(status) or b"HTTP/1.1 %d Error\r\n" % status


def _header_lines(headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> bytes:
    return b"".join([name + b": " + value + b"\r\n" for name, value in headers]) if headers else b""


def response(
    status: int,
    content_type: bytes | None,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...] = (),
    *,
    close: bool = False,
    head_only: bool = False,
) -> bytes:
    """A whole response with a Content-Length body (no body sent for HEAD)."""
    start = _RESPONSE_STARTS.get((status, content_type))
    if start is None:
        start = _response_start(status, content_type)
    return b"%b%d\r\n%b%b\r\n%b" % (
        start,
        len(body),
        _header_lines(headers),
        _CLOSE_HEADER if close else b"",
        b"" if head_only else body,
    )


# The status line and content type of a response, through "content-length: ", pre-encoded
# per (status, content type) seen: every answer was assembling them piece by piece.
_RESPONSE_STARTS: dict[tuple[int, bytes | None], bytes] = {}
_CLOSE_HEADER: Final = b"connection: close\r\n"


def _response_start(status: int, content_type: bytes | None) -> bytes:
    start = _status_line(status) + (
        b"" if content_type is None else b"content-type: " + content_type + b"\r\n"
    )
    start += b"content-length: "
    if len(_RESPONSE_STARTS) < 256:  # statuses and content types are the server's own: few
        _RESPONSE_STARTS[status, content_type] = start
    return start


def chunk(payload: bytes) -> bytes:
    """One piece of a chunked body (an empty payload would end the body: use ``CHUNK_END``)."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)


#: The last chunk of a chunked body.
CHUNK_END: Final = b"0\r\n\r\n"
