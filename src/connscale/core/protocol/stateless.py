"""The stateless revision (2026-07-28) of MCP: what a request carries, and what answers look like.

A modern request has no session: its ``params._meta`` carries the protocol version, the
client's capabilities (and optionally its info and a log level) for this request only. Every
result carries ``resultType`` and the server's info in ``_meta``; cacheable results carry
``ttlMs`` and ``cacheScope``. A tool that needs something from the client (sampling,
elicitation, roots) cannot ask it mid-call; it answers ``input_required`` with the questions
and an integrity-protected ``requestState``, and the client retries with the answers
(multi-round-trip requests). This module holds those wire shapes; ``mcp.McpProtocol`` serves
both eras with them.

The checks run in the order the specification and its conformance suite require: the
``_meta`` shape (-32602), then HTTP headers against the body (-32020), then whether the
version is supported (-32022), then whether the method exists (-32601).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import msgspec

from connscale.core.protocol.jsonrpc import INVALID_PARAMS, RequestId
from connscale.core.protocol.surface import LOG_LEVELS, LOG_OFF, ClientInfo
from connscale.core.protocol.versions import STATELESS_VERSIONS

__all__ = [
    "CACHEABLE",
    "HEADER_MISMATCH",
    "MISSING_CAPABILITY",
    "META_CAPABILITIES",
    "META_CLIENT",
    "META_LOG_LEVEL",
    "META_SERVER",
    "META_SUBSCRIPTION",
    "META_VERSION",
    "STATUS_OF",
    "UNSUPPORTED_VERSION",
    "Envelope",
    "InputRequired",
    "StatelessError",
    "client_of",
    "decode_header_value",
    "header_problem",
    "read_envelope",
]

META_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
META_CLIENT: Final = "io.modelcontextprotocol/clientInfo"
META_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
META_LOG_LEVEL: Final = "io.modelcontextprotocol/logLevel"
META_SERVER: Final = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION: Final = "io.modelcontextprotocol/subscriptionId"

HEADER_MISMATCH: Final = -32020
MISSING_CAPABILITY: Final = -32021
UNSUPPORTED_VERSION: Final = -32022

#: Methods whose complete results carry ``ttlMs`` and ``cacheScope``.
CACHEABLE: Final = frozenset(
    {
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
    }
)
#: The HTTP status a modern error is sent with (others: 200).
STATUS_OF: Final = {
    -32700: 400,
    -32600: 400,
    -32602: 400,
    HEADER_MISMATCH: 400,
    MISSING_CAPABILITY: 400,
    UNSUPPORTED_VERSION: 400,
    -32601: 404,
}
#: Which body parameter the ``Mcp-Name`` header mirrors, by method.
NAME_PARAM: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

_SENTINEL_PREFIX: Final = "=?base64?"
_SENTINEL_SUFFIX: Final = "?="


class StatelessError(Exception):
    """A modern request refused before dispatch: a JSON-RPC error code, message and data."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class InputRequired(BaseException):
    """A function asked the client something it has not answered yet (2026-07-28).

    A ``BaseException`` so that a tool's ``except Exception`` does not swallow it: the call
    runner turns it into an ``input_required`` result.
    """


class Envelope:
    """What one modern request says about its client, and the answers it brought back.

    ``client`` is built from ``_meta`` when first asked for: most tools never ask, and a
    frozen dataclass costs about a microsecond to build on every call.
    """

    __slots__ = ("_client", "_meta", "asked", "count", "log_level", "responses", "version")

    def __init__(
        self,
        version: str,
        meta: Mapping[str, Any],
        log_level: str | None,
        responses: dict[str, Any],
    ) -> None:
        self.version = version
        self._meta = meta
        self._client: ClientInfo | None = None
        self.log_level = log_level
        #: Answers to input requests: from earlier rounds (``requestState``) and this one.
        self.responses = responses
        #: Input requests made in this round that have no answer yet: key -> request.
        self.asked: dict[str, dict[str, Any]] = {}
        self.count = 0  # requests made so far in this run of the function (default keys)

    @property
    def client(self) -> ClientInfo:
        client = self._client
        if client is None:
            client = self._client = client_of(self.version, self._meta)
        return client


def read_envelope(params: object) -> tuple[str, dict[str, Any], str | None]:
    """(version, ``_meta``, log level) from a modern request's params; ``StatelessError``
    -32602 when ``_meta`` is missing or lacks a required key (checked first of all)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        raise StatelessError(
            INVALID_PARAMS,
            "params._meta must be an object carrying the required "
            f"'{META_VERSION}' and '{META_CAPABILITIES}' envelope keys",
        )
    missing = [key for key in (META_VERSION, META_CAPABILITIES) if key not in meta]
    if missing:
        raise StatelessError(
            INVALID_PARAMS,
            "params._meta is missing the required envelope key(s): " + ", ".join(missing),
        )
    version = meta[META_VERSION]
    if not isinstance(version, str) or not isinstance(meta[META_CAPABILITIES], dict):
        raise StatelessError(
            INVALID_PARAMS,
            f"'{META_VERSION}' must be a string and '{META_CAPABILITIES}' an object",
        )
    level = meta.get(META_LOG_LEVEL, LOG_OFF)
    if level != LOG_OFF and level not in LOG_LEVELS:
        raise StatelessError(
            INVALID_PARAMS, f"'{META_LOG_LEVEL}' must be one of: " + ", ".join(LOG_LEVELS)
        )
    return version, meta, level


def client_of(version: str, meta: Mapping[str, Any]) -> ClientInfo:
    """The client a checked ``_meta`` describes (its info is optional; odd types are dropped)."""
    info = meta.get(META_CLIENT)
    name = version_of_client = None
    if isinstance(info, dict):
        raw_name = info.get("name")
        name = raw_name if isinstance(raw_name, str) else None
        raw = info.get("version")
        version_of_client = raw if isinstance(raw, str) else None
    return ClientInfo(
        protocol_version=version,
        name=name[:256] if name else None,
        version=version_of_client[:256] if version_of_client else None,
        capabilities=meta[META_CAPABILITIES],
    )


def check_version(version: str) -> None:
    """-32022 for a version this server does not speak (after the header checks)."""
    if version not in STATELESS_VERSIONS:
        raise StatelessError(
            UNSUPPORTED_VERSION,
            "Unsupported protocol version",
            {"supported": list(STATELESS_VERSIONS), "requested": version[:64]},
        )


def decode_header_value(raw: bytes) -> str | None:
    """A request header's value: OWS trimmed, ``=?base64?...?=`` decoded; None if invalid."""
    try:
        text = raw.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        return None
    if text.startswith(_SENTINEL_PREFIX) and text.endswith(_SENTINEL_SUFFIX):
        encoded = text[len(_SENTINEL_PREFIX) : -len(_SENTINEL_SUFFIX)]
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None
        # Only the canonical encoding: padding and spare bits exactly as an encoder writes.
        if base64.b64encode(decoded).decode("ascii") != encoded:
            return None
        try:
            return decoded.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return text


class HeaderRule(NamedTuple):
    """One ``x-mcp-header`` annotation of a tool's input schema: header name, argument."""

    header: bytes
    argument: str


def header_problem(
    headers: Mapping[bytes, bytes],
    version: str,
    method: str,
    params: Mapping[str, Any],
    rules: tuple[HeaderRule, ...] = (),
) -> str | None:
    """Why the HTTP headers disagree with the body (a -32020 message), or None."""
    for name in (b"mcp-protocol-version", b"mcp-method", b"mcp-name"):
        value = headers.get(name)
        # find, not ``in``: bytes.__contains__ first tries its operand as an integer, and
        # the TypeError it raises and clears costs more than the search.
        if value is not None and value.find(b",") >= 0:
            return f"{name.decode()} header appears more than once"
    if not _matches(headers.get(b"mcp-protocol-version"), version):
        return "mcp-protocol-version header does not match the request envelope's protocol version"
    if not _matches(headers.get(b"mcp-method"), method):
        return "mcp-method header does not match the request body's method"
    name_param = NAME_PARAM.get(method)
    if name_param is not None:
        body = params.get(name_param)
        if not isinstance(body, str) or not _matches(headers.get(b"mcp-name"), body):
            return f"mcp-name header does not match the request body's '{name_param}' parameter"
    if rules:
        arguments = params.get("arguments")
        arguments = arguments if isinstance(arguments, dict) else {}
        for rule in rules:
            raw = headers.get(b"mcp-param-" + rule.header.lower())
            argument: object = arguments.get(rule.argument)
            title = "Mcp-Param-" + rule.header.decode("ascii", "replace")
            if raw is None:
                if argument is not None:
                    return f"{title} header is missing but the '{rule.argument}' argument is set"
                continue
            decoded = decode_header_value(raw)
            if decoded is None:
                return f"{title} header carries a malformed base64 sentinel value"
            if argument is None or not _same(decoded, argument):
                return f"{title} header does not match the '{rule.argument}' argument"
    return None


def _matches(header: bytes | None, expected: str) -> bool:
    """Whether a header carries ``expected`` (compared as bytes when it can be: the usual
    case of a plain ASCII value, without decoding anything)."""
    if header is None:
        return False
    if header == expected.encode("utf-8", "surrogatepass"):
        return True
    return decode_header_value(header) == expected


def _same(header: str, value: object) -> bool:
    if isinstance(value, bool):
        return header == ("true" if value else "false")
    if isinstance(value, int | float):
        try:
            return float(header) == float(value)
        except ValueError:
            return False
    return isinstance(value, str) and header == value


def header_rules(schema: object) -> tuple[HeaderRule, ...]:
    """The ``x-mcp-header`` annotations of a tool's input schema (top-level properties)."""
    if not isinstance(schema, dict):
        return ()
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return ()
    rules = []
    for argument, spec in properties.items():
        if isinstance(spec, dict):
            name = spec.get("x-mcp-header")
            if isinstance(name, str) and name and name.isascii() and "\r" not in name:
                rules.append(HeaderRule(name.encode("ascii"), argument))
    return tuple(rules)


def request_binding(method: str, target: object, arguments: object) -> bytes:
    """What a ``requestState`` is bound to: the method, the target and the arguments."""
    digest = hashlib.sha256(msgspec.json.encode([method, target, arguments], order="sorted"))
    return digest.digest()[:16]


def subscription_meta(subscription: RequestId) -> dict[str, Any]:
    return {META_SUBSCRIPTION: subscription}
