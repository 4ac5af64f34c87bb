"""``Context``: what a tool, resource or prompt function can do while it runs.

A function asks for it by annotating a parameter with ``Context`` (the parameter stays out of
the input schema). It is a thin, per-call view of the engine's ``CallContext``: progress and
log notifications go out through ``notify``; sampling, elicitation and roots are
server-to-client requests through ``request``, each with a timeout (the App's default unless
given). Each request first checks the capability the client declared at the handshake, so a
tool gets a clear ``ClientCapabilityError`` instead of a request the client will refuse.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec

from connscale.app._content import Message
from connscale.app._schema import decode_hook, is_pydantic_model_type, schema_of, schema_problem
from connscale.core.protocol.surface import LOG_LEVELS, LOG_OFF, CallContext, ClientInfo
from connscale.core.protocol.versions import is_stateless
from connscale.errors import (
    ClientCapabilityError,
    ClientRequestError,
    ClientResponseError,
    ConfigurationError,
    ProtocolError,
)

__all__ = [
    "Context",
    "ElicitResult",
    "Root",
    "SampleResult",
    "elicitation_schema",
    "titled",
]

T = TypeVar("T")

_LEVEL_RANK = {level: rank for rank, level in enumerate(LOG_LEVELS)}


class ContextHost(Protocol):
    """What a Context needs from its App."""

    @property
    def request_timeout(self) -> float | None: ...

    def read_resource(self, uri: str, context: CallContext) -> Any | Awaitable[Any]: ...


# -- results of server-to-client requests ---------------------------------------------------


class SampleResult(msgspec.Struct, frozen=True, rename="camel"):
    """The client's answer to ``sampling/createMessage``."""

    role: Literal["user", "assistant"]
    #: One content block (a dict), or a list of them (a reply with tool uses).
    content: Any
    model: str
    stop_reason: str | None = None

    @property
    def text(self) -> str | None:
        """The text of the first text block, if any."""
        blocks = self.content if isinstance(self.content, list) else [self.content]
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                return text if isinstance(text, str) else None
        return None


class Root(msgspec.Struct, frozen=True):
    """A root the client exposes (``roots/list``): a ``file://`` URI and an optional name."""

    uri: str
    name: str | None = None


class _RootsAnswer(msgspec.Struct, frozen=True):
    roots: list[Root]


class _ElicitAnswer(msgspec.Struct, frozen=True):
    action: Literal["accept", "decline", "cancel"]
    content: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ElicitResult(Generic[T]):
    """The user's answer to ``elicit``: ``action`` and, on accept, ``data`` of the asked type."""

    action: Literal["accept", "decline", "cancel"]
    data: T | None = None
    #: The client's raw ``content`` (None unless accepted).
    content: Mapping[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.action == "accept"


# -- elicitation schemas ------------------------------------------------------------------------


def titled(
    options: Mapping[str, str] | Sequence[tuple[str, str]], *, legacy: bool = False
) -> msgspec.Meta:
    """Display titles for the values of a choice: ``Annotated[Literal[...], titled({...})]``.

    The schema gets ``oneOf`` of ``{const, title}`` (SEP-1330); a multiple choice is a list
    of titled choices, ``list[Annotated[Literal[...], titled({...})]]``, which elicitation
    sends as ``items.anyOf``. ``legacy=True`` sends the older ``enumNames`` instead.
    """
    pairs = list(options.items()) if isinstance(options, Mapping) else list(options)
    if legacy:
        return msgspec.Meta(extra_json_schema={"enumNames": [title for _, title in pairs]})
    return msgspec.Meta(
        extra_json_schema={"oneOf": [{"const": value, "title": title} for value, title in pairs]}
    )


_PRIMITIVE_KEYS = frozenset(
    {
        "type",
        "title",
        "description",
        "default",
        "enum",
        "enumNames",
        "oneOf",
        "items",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "format",
        "minItems",
        "maxItems",
    }
)
_FORMATS = frozenset({"date", "date-time", "email", "uri"})


def _resolve(node: dict[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Inline a ``$ref`` (keeping sibling keys) and flatten ``T | None`` to ``T``."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = dict(defs[ref.rsplit("/", 1)[-1]])
        target.pop("title", None)  # the referenced type's name is not the field's title
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    options = node.get("anyOf")
    if isinstance(options, list):
        others = [option for option in options if option != {"type": "null"}]
        if len(others) == 1 and len(others) < len(options):
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**_resolve(dict(others[0]), defs), **rest}
            if node.get("default", 0) is None:
                del node["default"]  # optional means "may be left out", not null
    if "enum" in node and "type" not in node and all(isinstance(v, str) for v in node["enum"]):
        node["type"] = "string"
    return node


def _primitive(field: str, node: dict[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    kind = node.get("type")
    if kind == "array":
        items = node.get("items")
        items = _resolve(dict(items), defs) if isinstance(items, dict) else {}
        if "oneOf" in items:
            node["items"] = {"anyOf": items["oneOf"]}  # a titled multiple choice
        elif "enum" in items:
            node["items"] = {"type": "string", "enum": items["enum"]}
        else:
            raise ConfigurationError(
                f"elicitation field {field!r}: a list must be a multiple choice, "
                "list[Literal[...]] or list[SomeEnum]"
            )
    elif kind == "string":
        if "oneOf" in node:
            node.pop("enum", None)  # titled choices carry the values themselves
        if "format" in node and node["format"] not in _FORMATS:
            del node["format"]
    elif kind not in ("number", "integer", "boolean"):
        raise ConfigurationError(
            f"elicitation field {field!r} must be a str, int, float, bool, an enum or a "
            f"multiple choice (got schema {node!r:.120})"
        )
    return {key: value for key, value in node.items() if key in _PRIMITIVE_KEYS}


def _is_form_type(schema_type: Any) -> bool:
    return (
        (isinstance(schema_type, type) and issubclass(schema_type, msgspec.Struct))
        or (isinstance(schema_type, type) and dataclasses.is_dataclass(schema_type))
        or typing.is_typeddict(schema_type)
        or is_pydantic_model_type(schema_type)
    )


def _choices(annotation: Any) -> list[str] | None:
    """The values of a ``Literal`` or ``Enum`` (or a list/optional of one) in declared order."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _choices(typing.get_args(annotation)[0])
    if origin is Literal:
        return [str(value) for value in typing.get_args(annotation)]
    if origin in (list, typing.Union, types.UnionType):
        found = [_choices(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        return found[0] if len(found) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return None


def _choice_orders(schema_type: Any) -> dict[str, list[str]]:
    if is_pydantic_model_type(schema_type):
        return {}  # pydantic keeps the declared order itself
    try:
        hints = typing.get_type_hints(schema_type, include_extras=True)
    except Exception:
        return {}
    orders = {name: _choices(hint) for name, hint in hints.items()}
    return {name: order for name, order in orders.items() if order}


def elicitation_schema(schema_type: Any) -> dict[str, Any]:
    """The ``requestedSchema`` for a Struct, dataclass, TypedDict or pydantic model.

    Fields must be primitives (str, int, float, bool), enums (``Literal``/``Enum``, titled
    with ``titled``) or multiple choices (``list`` of those); defaults are sent (SEP-1034).
    """
    if not _is_form_type(schema_type):
        raise ConfigurationError(
            f"elicit() needs a msgspec Struct, dataclass, TypedDict or pydantic model type, "
            f"not {schema_type!r}"
        )
    try:
        schema = schema_of(schema_type)
    except TypeError as exc:
        raise ConfigurationError(
            f"no JSON schema for {schema_type!r}: {schema_problem(exc)}"
        ) from None
    defs = schema.get("$defs", {})
    properties = {
        name: _primitive(name, dict(node), defs)
        for name, node in schema.get("properties", {}).items()
    }
    for name, order in _choice_orders(schema_type).items():
        prop = properties.get(name)
        target = prop.get("items") if prop is not None and prop.get("type") == "array" else prop
        if target is not None and sorted(map(str, target.get("enum", ()))) == sorted(order):
            target["enum"] = order  # as declared, not msgspec's sorted order: forms show it
    requested: dict[str, Any] = {"type": "object", "properties": properties}
    required = schema.get("required")
    if required:
        requested["required"] = list(required)
    return requested


# -- the context ---------------------------------------------------------------------------------


class Context:
    """Per-call access to the client: progress, logging, sampling, elicitation, roots.

    Annotate a parameter with ``Context`` to receive one. Its async methods need an async
    function (a sync or ``blocking`` one can read its properties).
    """

    __slots__ = ("_call", "_host")

    def __init__(self, call: CallContext, host: ContextHost) -> None:
        self._call = call
        self._host = host

    # -- who and what -------------------------------------------------------------------

    @property
    def request_id(self) -> int | str:
        """The JSON-RPC id of the request being served."""
        return self._call.request_id

    @property
    def client(self) -> ClientInfo:
        """What the client said about itself (name, version, capabilities, protocol)."""
        return self._call.client

    @property
    def session_id(self) -> str | None:
        """The HTTP session id (handshake era over HTTP), else None."""
        return self._call.client.session_id

    @property
    def protocol_version(self) -> str:
        """The MCP protocol version in use for this request."""
        return self._call.client.protocol_version

    @property
    def progress_token(self) -> int | str | None:
        """The request's progress token (None: the client wants no progress)."""
        return self._call.progress_token

    # -- notifications --------------------------------------------------------------------

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Send ``notifications/progress`` (only when the request carried a progressToken)."""
        token = self._call.progress_token
        if token is None:
            return
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        self._call.notify("notifications/progress", params)

    async def log(self, level: str, message: Any, logger: str | None = None) -> None:
        """Send ``notifications/message`` unless ``level`` is below what the client asked for.

        ``level`` is an MCP (RFC 5424) level: debug, info, notice, warning, error, critical,
        alert, emergency. ``message`` is any JSON-able value.
        """
        rank = _LEVEL_RANK.get(level)
        if rank is None:
            raise ConfigurationError(
                f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}"
            )
        wanted = self._call.log_level
        if wanted == LOG_OFF or (wanted is not None and rank < _LEVEL_RANK.get(wanted, 0)):
            return
        params: dict[str, Any] = {"level": level, "data": message}
        if logger is not None:
            params["logger"] = logger
        self._call.notify("notifications/message", params)

    async def debug(self, message: Any, logger: str | None = None) -> None:
        """``log("debug", ...)``."""
        await self.log("debug", message, logger)

    async def info(self, message: Any, logger: str | None = None) -> None:
        """``log("info", ...)``."""
        await self.log("info", message, logger)

    async def warning(self, message: Any, logger: str | None = None) -> None:
        """``log("warning", ...)``."""
        await self.log("warning", message, logger)

    async def error(self, message: Any, logger: str | None = None) -> None:
        """``log("error", ...)``."""
        await self.log("error", message, logger)

    # -- server-to-client requests ----------------------------------------------------------

    def _declared(self, capability: str, purpose: str) -> Mapping[str, Any]:
        client = self._call.client
        capabilities = client.capabilities or {}
        declared = capabilities.get(capability)
        if not isinstance(declared, Mapping) and is_stateless(client.protocol_version):
            # 2026-07-28: the request says what this client can do; asking for more is the
            # request's error (-32021), which the client can answer by declaring it.
            raise ProtocolError(
                f"this request needs the client's {capability!r} capability {purpose}",
                -32021,
                {"requiredCapabilities": {capability: {}}},
            )
        if not isinstance(declared, Mapping):
            raise ClientCapabilityError(
                f"the client did not declare the {capability!r} capability, so it cannot be "
                f"asked {purpose}; check ctx.client.capabilities before asking"
            )
        return declared

    async def _request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timeout: float | None,
        key: str | None = None,
    ) -> Any:
        limit = self._host.request_timeout if timeout is None else timeout
        try:
            return await self._call.request(method, params, timeout=limit, key=key)
        except ProtocolError as exc:
            if is_stateless(self._call.client.protocol_version):
                raise  # an invalid answer in inputResponses: the request's own error
            raise ClientRequestError(
                f"the client answered {method} with error {exc.code}: {exc}", exc.code, exc.data
            ) from exc

    async def sample(
        self,
        messages: str | Sequence[Message | Mapping[str, Any] | str],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        temperature: float | None = None,
        stop_sequences: Sequence[str] | None = None,
        model_preferences: Mapping[str, Any] | None = None,
        include_context: Literal["none", "thisServer", "allServers"] | None = None,
        metadata: Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        key: str | None = None,
    ) -> SampleResult:
        """Ask the client's model for a message (``sampling/createMessage``).

        A str is one user message. ``timeout`` (seconds) defaults to the App's. ``key`` names
        the question in a 2026-07-28 ``input_required`` round (default: by its position).
        """
        declared = self._declared("sampling", "to sample a model")
        if tools is not None and not isinstance(declared.get("tools"), Mapping):
            raise ClientCapabilityError(
                "the client did not declare sampling.tools, so sampling cannot offer tools"
            )
        params: dict[str, Any] = {
            "messages": _sampling_messages(messages),
            "maxTokens": max_tokens,
        }
        for name, value in (
            ("systemPrompt", system_prompt),
            ("temperature", temperature),
            ("stopSequences", list(stop_sequences) if stop_sequences is not None else None),
            ("modelPreferences", model_preferences),
            ("includeContext", include_context),
            ("metadata", metadata),
            ("tools", list(tools) if tools is not None else None),
            ("toolChoice", tool_choice),
        ):
            if value is not None:
                params[name] = value
        answer = await self._request("sampling/createMessage", params, timeout, key)
        try:
            return msgspec.convert(answer, SampleResult)
        except msgspec.ValidationError as exc:
            raise ClientResponseError(f"the client's sampling result is malformed: {exc}") from None

    async def elicit(
        self,
        message: str,
        schema: type[T],
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> ElicitResult[T]:
        """Ask the user to fill in a form (``elicitation/create``, form mode).

        ``schema`` is a Struct, dataclass, TypedDict or pydantic model of primitive fields
        (see ``elicitation_schema``); on accept, ``data`` is an instance of it. ``key`` names
        the question in a 2026-07-28 ``input_required`` round (default: by its position).
        """
        declared = self._declared("elicitation", "to fill in a form")
        if declared and "form" not in declared:
            raise ClientCapabilityError(
                "the client declared elicitation without form mode, so it cannot fill in a form"
            )
        requested = elicitation_schema(schema)
        params = {"mode": "form", "message": message, "requestedSchema": requested}
        raw = await self._request("elicitation/create", params, timeout, key)
        try:
            answer = msgspec.convert(raw, _ElicitAnswer)
        except msgspec.ValidationError as exc:
            raise ClientResponseError(
                f"the client's elicitation result is malformed: {exc}"
            ) from None
        if answer.action != "accept":
            return ElicitResult(answer.action)
        if answer.content is None:
            raise ClientResponseError("the client accepted the elicitation but sent no content")
        try:
            data = msgspec.convert(answer.content, schema, strict=False, dec_hook=decode_hook)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ClientResponseError(
                f"the client's answer does not match the requested schema: {exc}"
            ) from None
        return ElicitResult("accept", data, answer.content)

    async def list_roots(
        self, *, timeout: float | None = None, key: str | None = None
    ) -> list[Root]:
        """The client's roots (``roots/list``)."""
        self._declared("roots", "for its roots")
        raw = await self._request("roots/list", None, timeout, key)
        try:
            return msgspec.convert(raw, _RootsAnswer).roots
        except msgspec.ValidationError as exc:
            raise ClientResponseError(f"the client's roots list is malformed: {exc}") from None

    async def read_resource(self, uri: str) -> list[dict[str, Any]]:
        """The ``contents`` of one of this app's own resources."""
        result = self._host.read_resource(uri, self._call)
        if inspect.isawaitable(result):
            result = await result
        contents: list[dict[str, Any]] = result["contents"]
        return contents

    def __repr__(self) -> str:
        return f"<Context request_id={self._call.request_id!r}>"


def _sampling_messages(
    messages: str | Sequence[Message | Mapping[str, Any] | str],
) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": {"type": "text", "text": messages}}]
    out: list[dict[str, Any]] = []
    for item in messages:
        if isinstance(item, Message):
            out.append(item.to_dict())
        elif isinstance(item, str):
            out.append({"role": "user", "content": {"type": "text", "text": item}})
        elif isinstance(item, Mapping) and item.get("role") in ("user", "assistant"):
            out.append(dict(item))  # as given: sampling also has tool_use/tool_result blocks
        else:
            raise ConfigurationError(f"not a sampling message: {item!r:.80}")
    return out
