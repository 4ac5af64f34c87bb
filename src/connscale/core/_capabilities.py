"""Capability sets: immutable, compared by content, and interned process-wide.

A client's capabilities are a JSON object that lives as long as its session, and most
clients send the same few. ``intern_capabilities`` maps equal sets (by their canonical JSON,
sorted keys) to one shared ``Capabilities`` object, so a million sessions of one client kind
hold one set between them. The pool is weak: a set no session uses any more is freed, so a
client inventing a new set per connection cannot grow it beyond the live sessions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Final
from weakref import WeakValueDictionary

import msgspec

from connscale.errors import ConfigurationError

__all__ = [
    "EMPTY_CAPABILITIES",
    "MAX_JSON_DEPTH",
    "Capabilities",
    "check_json_like",
    "intern_capabilities",
]


def _mapping_as_dict(value: object) -> object:
    # msgspec encodes dicts, not other mappings; check_json_like has let only JSON-like
    # values through, so any Mapping here becomes the dict it reads as.
    if isinstance(value, Mapping):
        return dict(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_canonical_encoder = msgspec.json.Encoder(order="sorted", enc_hook=_mapping_as_dict)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return Capabilities._from_trusted({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Capabilities):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


class Capabilities(Mapping[str, Any]):
    """An immutable, hashable capability set (JSON-like), compared by content.

    Build it with ``intern_capabilities``: equal sets then share one object. Nested objects
    come back as ``Capabilities`` and arrays as tuples; ``to_dict()`` gives a mutable copy.
    """

    __slots__ = ("__weakref__", "_interned", "_items", "_key", "_packed")

    _items: dict[str, Any]
    _key: bytes
    _packed: bytes | None  # canonical MessagePack, made on first use by the codec
    _interned: bool  # the pool's own object for its content (it stays there while it lives)

    def __init__(self, caps: Mapping[str, Any] | None = None) -> None:
        canonical = _canonical(caps)
        self._key = canonical
        self._packed = None
        self._interned = False
        self._items = {} if canonical == b"{}" else _freeze(msgspec.json.decode(canonical))._items

    @classmethod
    def _from_trusted(cls, items: dict[str, Any]) -> Capabilities:
        obj = cls.__new__(cls)
        obj._items = items
        obj._key = _canonical_encoder.encode(_thaw_items(items))
        obj._packed = None
        obj._interned = False
        return obj

    @property
    def canonical(self) -> bytes:
        """Canonical JSON (sorted keys): the identity of this capability set."""
        return self._key

    def to_dict(self) -> dict[str, Any]:
        """A fresh, mutable deep copy."""
        return _thaw_items(self._items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Capabilities):
            return self._key == other._key
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items()) or self.to_dict() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Capabilities({self._key.decode()})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (intern_capabilities, (self.to_dict(),))


def _thaw_items(items: dict[str, Any]) -> dict[str, Any]:
    return {key: _thaw(value) for key, value in items.items()}


def _canonical(caps: Mapping[str, Any] | None) -> bytes:
    if caps is None or (type(caps) is dict and not caps):
        return b"{}"
    if isinstance(caps, Capabilities):
        return caps._key
    if not isinstance(caps, Mapping):
        raise ConfigurationError(
            f"capabilities must be a JSON-like mapping or None, got {type(caps).__name__}"
        )
    check_json_like(caps, depth=0)
    return _canonical_encoder.encode(caps)


MAX_JSON_DEPTH: Final = 32


def check_json_like(value: Any, depth: int, *, tuples: bool = True) -> None:
    """Only what JSON can carry, so that encode/decode and equality are exact."""
    if depth > MAX_JSON_DEPTH:
        raise ConfigurationError(f"JSON-like values nest deeper than {MAX_JSON_DEPTH} levels")
    kind = type(value)
    # What decoded JSON holds, by exact type first: isinstance against the Mapping ABC costs
    # several times more, and a client's capabilities are checked at every initialize.
    if kind is str or kind is bool or value is None:
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise ConfigurationError(f"JSON object keys must be str, got {key!r}")
            check_json_like(item, depth + 1, tuples=tuples)
        return
    if isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ConfigurationError(f"integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigurationError(f"{value!r} is not a JSON value")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigurationError(f"JSON object keys must be str, got {key!r}")
            check_json_like(item, depth + 1, tuples=tuples)
        return
    if isinstance(value, list) or (tuples and isinstance(value, tuple)):
        for item in value:
            check_json_like(item, depth + 1, tuples=tuples)
        return
    raise ConfigurationError(f"capabilities hold JSON-like values only, not {type(value).__name__}")


# Process-wide intern pool: weak, so a capability set no session uses any more is freed.
_CAPABILITIES: WeakValueDictionary[bytes, Capabilities] = WeakValueDictionary()
EMPTY_CAPABILITIES: Final = Capabilities()
EMPTY_CAPABILITIES._interned = True
_CAPABILITIES[b"{}"] = EMPTY_CAPABILITIES


def intern_capabilities(caps: Mapping[str, Any] | None) -> Capabilities:
    """The one shared ``Capabilities`` equal to ``caps`` (None and {} give the empty set)."""
    # Not isinstance first: Capabilities is a Mapping, and isinstance of a dict against it
    # runs the ABC's check in Python. Each initialize interns twice (its check, then the
    # table's), so the pool's own object answers for itself without a lookup.
    if type(caps) is not dict and isinstance(caps, Capabilities):
        if caps._interned:
            return caps
        existing = _CAPABILITIES.get(caps._key)
        if existing is None:
            caps._interned = True
            _CAPABILITIES[caps._key] = caps
            return caps
        return existing
    key = _canonical(caps)
    found = _CAPABILITIES.get(key)
    if found is None:
        found = Capabilities.__new__(Capabilities)
        found._key = key
        found._items = _freeze(msgspec.json.decode(key))._items
        found._packed = None
        found._interned = True
        _CAPABILITIES[key] = found
    return found
