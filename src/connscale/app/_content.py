"""Content blocks, messages and descriptors, and how return values become MCP results.

Helpers (``Text``, ``Image``, ``Audio``, ``EmbeddedResource``, ``ResourceLink``,
``UserMessage``, ``AssistantMessage``, ``ToolResult``, ``Completion``) are small slotted
objects with a ``to_dict()`` giving the MCP wire shape; a plain dict in the wire shape is
accepted wherever a helper is. Descriptor parts (``ToolAnnotations``, ``Annotations``,
``Icon``) are msgspec Structs that encode to camelCase with unset fields left out.

Conversion rules for a tool's return value (``unstructured_result``): ``str`` -> one text
block; ``None`` -> no content; ``bytes`` or an ``Image`` -> image content, ``Audio`` -> audio
content; a list of content blocks and strings -> those blocks (a string as text); a
``ToolResult`` -> exactly that; a dict, msgspec Struct, dataclass or pydantic model ->
``structuredContent`` plus its JSON text; any other value -> its JSON text. A tool whose
return annotation declares data gets an ``outputSchema`` and ``structured_result`` instead
(see ``connscale.app._signature``).
"""

from __future__ import annotations

import base64
import dataclasses
import mimetypes
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from connscale.errors import ConfigurationError

__all__ = [
    "CONTENT_TYPES",
    "Annotations",
    "AssistantMessage",
    "Audio",
    "Completion",
    "Content",
    "EmbeddedResource",
    "Icon",
    "Image",
    "Message",
    "ResourceLink",
    "Text",
    "ToolAnnotations",
    "ToolResult",
    "UserMessage",
    "content_block",
    "encode_hook",
    "json_text",
    "prompt_messages",
    "resource_contents",
    "to_builtins",
    "unstructured_result",
]

#: The ``type`` of every MCP content block; a dict with one of these is taken as a block.
CONTENT_TYPES: Final = frozenset({"text", "image", "audio", "resource", "resource_link"})

Role = Literal["user", "assistant"]


# -- descriptor parts -------------------------------------------------------------------------


class Annotations(msgspec.Struct, frozen=True, omit_defaults=True, rename="camel"):
    """Hints for clients about a resource or content block (audience, priority, last change)."""

    audience: list[Role] | None = None
    priority: float | None = None
    last_modified: str | None = None


class ToolAnnotations(msgspec.Struct, frozen=True, omit_defaults=True, rename="camel"):
    """Hints about a tool's behaviour; clients must treat them as untrusted."""

    title: str | None = None
    read_only_hint: bool | None = None
    destructive_hint: bool | None = None
    idempotent_hint: bool | None = None
    open_world_hint: bool | None = None


class Icon(msgspec.Struct, frozen=True, omit_defaults=True, rename="camel"):
    """An icon a client may show beside a tool, resource, prompt or the server."""

    src: str
    mime_type: str | None = None
    sizes: list[str] | None = None
    theme: Literal["light", "dark"] | None = None


def _plain(value: Any) -> Any:
    """A descriptor part (Struct or dict) as plain JSON-able data."""
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


# -- content blocks ------------------------------------------------------------------------------


class Content:
    """Base of the content-block helpers: ``to_dict()`` gives the MCP block."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def _decorate(
    block: dict[str, Any], annotations: Annotations | Mapping[str, Any] | None, meta: Any
) -> dict[str, Any]:
    if annotations is not None:
        block["annotations"] = _plain(annotations)
    if meta is not None:
        block["_meta"] = meta
    return block


class Text(Content):
    """A text content block."""

    __slots__ = ("annotations", "meta", "text")

    def __init__(
        self,
        text: str,
        *,
        annotations: Annotations | Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.text = text
        self.annotations = annotations
        self.meta = meta

    def to_dict(self) -> dict[str, Any]:
        return _decorate({"type": "text", "text": self.text}, self.annotations, self.meta)


_IMAGE_TYPES: Final = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
_AUDIO_TYPES: Final = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".aac": "audio/aac",
    ".m4a": "audio/mp4",
}


class _Media(Content):
    """Binary content from bytes or a file, sent base64-encoded with its MIME type."""

    __slots__ = ("_mime_type", "annotations", "data", "meta", "path")
    _kind: str = ""
    _default_mime: str = ""
    _by_suffix: Mapping[str, str] = {}

    def __init__(
        self,
        data: bytes | None = None,
        *,
        path: str | Path | None = None,
        format: str | None = None,
        mime_type: str | None = None,
        annotations: Annotations | Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if (data is None) == (path is None):
            raise ConfigurationError(f"{type(self).__name__} needs exactly one of data or path")
        if isinstance(data, str):
            raise ConfigurationError(
                f"{type(self).__name__} data must be the raw bytes (they are base64-encoded "
                "for you), not a str"
            )
        self.data = data
        self.path = Path(path) if path is not None else None
        self.annotations = annotations
        self.meta = meta
        if mime_type is not None:
            self._mime_type = mime_type
        elif format is not None:
            self._mime_type = f"{self._kind}/{format.lower()}"
        elif self.path is not None:
            suffix = self.path.suffix.lower()
            guessed = self._by_suffix.get(suffix) or mimetypes.guess_type(self.path.name)[0]
            self._mime_type = guessed or "application/octet-stream"
        else:
            self._mime_type = self._default_mime

    @property
    def mime_type(self) -> str:
        """The MIME type sent with the data."""
        return self._mime_type

    def read(self) -> bytes:
        """The raw bytes (read from ``path`` each time when given a path)."""
        if self.data is not None:
            return bytes(self.data)
        assert self.path is not None
        return self.path.read_bytes()

    def to_dict(self) -> dict[str, Any]:
        block = {
            "type": self._kind,
            "data": base64.b64encode(self.read()).decode("ascii"),
            "mimeType": self._mime_type,
        }
        return _decorate(block, self.annotations, self.meta)


class Image(_Media):
    """An image: ``Image(data, format="png")`` or ``Image(path="chart.png")``."""

    __slots__ = ()
    _kind = "image"
    _default_mime = "image/png"
    _by_suffix = _IMAGE_TYPES


class Audio(_Media):
    """Audio: ``Audio(data, format="wav")`` or ``Audio(path="clip.mp3")``."""

    __slots__ = ()
    _kind = "audio"
    _default_mime = "audio/wav"
    _by_suffix = _AUDIO_TYPES


class EmbeddedResource(Content):
    """A resource's contents inside a result or message: ``text`` or ``blob`` (bytes)."""

    __slots__ = ("annotations", "blob", "meta", "mime_type", "text", "uri")

    def __init__(
        self,
        uri: str,
        *,
        text: str | None = None,
        blob: bytes | None = None,
        mime_type: str | None = None,
        annotations: Annotations | Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if (text is None) == (blob is None):
            raise ConfigurationError("EmbeddedResource needs exactly one of text or blob")
        self.uri = uri
        self.text = text
        self.blob = blob
        self.mime_type = mime_type
        self.annotations = annotations
        self.meta = meta

    def to_dict(self) -> dict[str, Any]:
        resource: dict[str, Any] = {"uri": self.uri}
        if self.mime_type is not None:
            resource["mimeType"] = self.mime_type
        if self.text is not None:
            resource["text"] = self.text
        else:
            assert self.blob is not None
            resource["blob"] = base64.b64encode(self.blob).decode("ascii")
        return _decorate({"type": "resource", "resource": resource}, self.annotations, self.meta)


class ResourceLink(Content):
    """A link to a resource the client may read later (``resource_link``)."""

    __slots__ = (
        "annotations",
        "description",
        "icons",
        "meta",
        "mime_type",
        "name",
        "size",
        "title",
        "uri",
    )

    def __init__(
        self,
        uri: str,
        name: str,
        *,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
        annotations: Annotations | Mapping[str, Any] | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.uri = uri
        self.name = name
        self.title = title
        self.description = description
        self.mime_type = mime_type
        self.size = size
        self.annotations = annotations
        self.icons = icons
        self.meta = meta

    def to_dict(self) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "resource_link", "uri": self.uri, "name": self.name}
        for key, value in (
            ("title", self.title),
            ("description", self.description),
            ("mimeType", self.mime_type),
            ("size", self.size),
        ):
            if value is not None:
                block[key] = value
        if self.icons is not None:
            block["icons"] = [_plain(icon) for icon in self.icons]
        return _decorate(block, self.annotations, self.meta)


# -- results and messages ------------------------------------------------------------------------


class ToolResult:
    """A complete ``CallToolResult``, sent exactly as given (no conversion, no schema check).

    ``content`` items are content blocks (helpers or dicts) or strings (text blocks).
    """

    __slots__ = ("content", "is_error", "meta", "structured_content")

    def __init__(
        self,
        content: Sequence[Content | Mapping[str, Any] | str] = (),
        *,
        structured_content: Mapping[str, Any] | None = None,
        is_error: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.content = content
        self.structured_content = structured_content
        self.is_error = is_error
        self.meta = meta

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "content": [content_block(item) for item in self.content],
            "isError": self.is_error,
        }
        if self.structured_content is not None:
            result["structuredContent"] = self.structured_content
        if self.meta is not None:
            result["_meta"] = self.meta
        return result


class Message:
    """One prompt (or sampling) message: a role and one content block."""

    __slots__ = ("content", "role")

    def __init__(self, role: Role, content: Content | Mapping[str, Any] | str | bytes) -> None:
        if role not in ("user", "assistant"):
            raise ConfigurationError(f"a message role is 'user' or 'assistant', not {role!r}")
        self.role = role
        self.content = content

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": content_block(self.content)}


class UserMessage(Message):
    """A message from the user."""

    __slots__ = ()

    def __init__(self, content: Content | Mapping[str, Any] | str | bytes) -> None:
        super().__init__("user", content)


class AssistantMessage(Message):
    """A message from the assistant."""

    __slots__ = ()

    def __init__(self, content: Content | Mapping[str, Any] | str | bytes) -> None:
        super().__init__("assistant", content)


@dataclasses.dataclass(frozen=True, slots=True)
class Completion:
    """What a completion handler may return instead of a plain list of values."""

    values: Sequence[str]
    total: int | None = None
    has_more: bool | None = None


# -- conversion ------------------------------------------------------------------------------


def _pydantic_model(value: object) -> bool:
    # pydantic is optional: if nobody imported it, no value can be one of its models.
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


def encode_hook(value: Any) -> Any:
    """msgspec ``enc_hook``: pydantic models by their JSON dump, anything else as ``str``."""
    if _pydantic_model(value):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Content | Message | ToolResult):
        return value.to_dict()
    if isinstance(value, Completion):
        return dataclasses.asdict(value)
    return str(value)


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def to_builtins(value: Any) -> Any:
    """``value`` as JSON-able builtins (Structs, dataclasses, enums, datetimes, pydantic...)."""
    if type(value) in _SCALARS:
        return value  # already builtins; msgspec's keyword-argument call costs more than this
    return msgspec.to_builtins(value, enc_hook=encode_hook)


_encoder = msgspec.json.Encoder(enc_hook=encode_hook)


def json_text(builtins: Any) -> str:
    """Compact JSON text of already-converted builtins."""
    return _encoder.encode(builtins).decode("utf-8")


def content_block(item: Any) -> dict[str, Any]:
    """One MCP content block from a helper, a block dict, a str (text) or bytes (image)."""
    if isinstance(item, Content):
        return item.to_dict()
    if isinstance(item, str):
        return {"type": "text", "text": item}
    if isinstance(item, Mapping):
        if item.get("type") not in CONTENT_TYPES:
            raise TypeError(f"not an MCP content block (no known 'type'): {item!r:.80}")
        return dict(item)
    if isinstance(item, bytes | bytearray | memoryview):
        return Image(bytes(item)).to_dict()
    raise TypeError(f"cannot turn {type(item).__name__} into a content block")


def _is_block(item: object) -> bool:
    return isinstance(item, Content) or (
        isinstance(item, Mapping) and item.get("type") in CONTENT_TYPES
    )


def _structured_type(value: object) -> bool:
    """Values whose JSON is an object: they become ``structuredContent``."""
    return (
        isinstance(value, dict | msgspec.Struct)
        or (dataclasses.is_dataclass(value) and not isinstance(value, type))
        or _pydantic_model(value)
    )


def unstructured_result(value: Any, *, structured: bool = True) -> dict[str, Any]:
    """A ``CallToolResult`` for a tool without an ``outputSchema`` (rules in the module doc).

    With ``structured=False`` an object-like value gives its JSON text only.
    """
    if type(value) is str:
        return {"content": [{"type": "text", "text": value}], "isError": False}
    if value is None:
        return {"content": [], "isError": False}
    if isinstance(value, ToolResult):
        return value.to_dict()
    if isinstance(value, Content | bytes | bytearray | memoryview):
        return {"content": [content_block(value)], "isError": False}
    if isinstance(value, list | tuple) and all(
        type(item) is str or _is_block(item) for item in value
    ):
        # Content blocks, and strings among them as text blocks (as FastMCP does).
        return {"content": [content_block(item) for item in value], "isError": False}
    builtins = to_builtins(value)
    result: dict[str, Any] = {
        "content": [{"type": "text", "text": json_text(builtins)}],
        "isError": False,
    }
    if structured and isinstance(builtins, dict) and _structured_type(value):
        result["structuredContent"] = builtins
    return result


def structured_result(
    value: Any, *, wrap: bool, check: Callable[[Any], object] | None
) -> dict[str, Any]:
    """A ``CallToolResult`` for a tool with an ``outputSchema``.

    ``wrap`` puts a non-object value under ``{"result": ...}`` (as the official SDK does);
    ``check`` validates the builtins against the declared return type and raises
    ``msgspec.ValidationError`` when they do not match it.
    """
    if isinstance(value, ToolResult):
        return value.to_dict()
    builtins = to_builtins(value)
    if check is not None:
        check(builtins)
    text = value if type(value) is str else json_text(builtins)
    return {
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"result": builtins} if wrap else builtins,
        "isError": False,
    }


def error_result(message: str) -> dict[str, Any]:
    """A ``CallToolResult`` that reports a tool's failure to the model."""
    return {"content": [{"type": "text", "text": message}], "isError": True}


def prompt_messages(value: Any) -> list[dict[str, Any]]:
    """Prompt messages from a prompt function's return value.

    A str or a bare content block becomes one user message; ``Message`` helpers and dicts
    with a ``role`` stay as they are; a list holds any of these.
    """
    items = value if isinstance(value, list | tuple) else [value]
    messages: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Message):
            messages.append(item.to_dict())
        elif isinstance(item, Mapping) and "role" in item:
            role, content = item.get("role"), item.get("content")
            if role not in ("user", "assistant") or content is None:
                raise TypeError(f"a message needs role user/assistant and content: {item!r:.80}")
            messages.append({"role": role, "content": content_block(content)})
        elif isinstance(item, str) or _is_block(item):
            messages.append({"role": "user", "content": content_block(item)})
        else:
            text = json_text(to_builtins(item))
            messages.append({"role": "user", "content": {"type": "text", "text": text}})
    return messages


def resource_contents(uri: str, value: Any, mime_type: str | None) -> list[dict[str, Any]]:
    """``contents`` of a ``resources/read`` result from a resource function's return value.

    str -> text (``text/plain`` unless told), bytes -> base64 blob
    (``application/octet-stream`` unless told), ``Image``/``Audio`` -> blob with their type,
    anything else -> JSON text (``application/json`` unless told).
    """
    if isinstance(value, str):
        return [{"uri": uri, "mimeType": mime_type or "text/plain", "text": value}]
    if isinstance(value, bytes | bytearray | memoryview):
        blob = base64.b64encode(value).decode("ascii")
        return [{"uri": uri, "mimeType": mime_type or "application/octet-stream", "blob": blob}]
    if isinstance(value, _Media):
        blob = base64.b64encode(value.read()).decode("ascii")
        return [{"uri": uri, "mimeType": mime_type or value.mime_type, "blob": blob}]
    text = json_text(to_builtins(value))
    return [{"uri": uri, "mimeType": mime_type or "application/json", "text": text}]
