"""How much memory a Session keeps alive: a deep, sharing-aware walk, not fixed arithmetic.

The walk follows references (``gc.get_referents``) from the session and adds
``sys.getsizeof`` of every object it owns. An object is *shared*, and neither counted nor
followed, when freeing the session would not free it:

- it is a singleton or a type (None, True, enum members such as Transport.TCP, classes);
- it is an interned capability set (one object for every session with equal capabilities);
- something outside the session also references it: its reference count is higher than
  the one reference the session holds (the walk calibrates the count its own locals add).

Each object is counted once even if the session reaches it twice. The result is what
``tracemalloc`` sees when a session and the values only it uses are created.
"""

from __future__ import annotations

import gc
import sys
from enum import Enum
from typing import Any, Final

from connscale.core.session import FIELDS, Capabilities, Session

__all__ = ["estimate_memory", "size_breakdown"]

_SINGLETONS: Final = (None, True, False, Ellipsis, NotImplemented)


def _references_held_by_walk() -> int:
    """The reference count an object held once by its container shows inside the walk."""
    container = [object()]
    for ref in gc.get_referents(container):
        return sys.getrefcount(ref)
    raise AssertionError("unreachable")  # pragma: no cover


_OWNED_REFCOUNT: Final = _references_held_by_walk()


def _is_shared(obj: Any) -> bool:
    if any(obj is singleton for singleton in _SINGLETONS):
        return True
    if isinstance(obj, type | Enum | Capabilities):
        return True
    return type(obj) is int and -5 <= obj <= 256  # CPython's cached small ints


def _owned_size(root: Any, seen: set[int]) -> int:
    """Bytes of ``root`` and everything only it keeps alive (``root`` itself is counted)."""
    if id(root) in seen or _is_shared(root):
        return 0
    seen.add(id(root))
    total = sys.getsizeof(root)
    stack = [root]
    while stack:
        obj = stack.pop()
        for ref in gc.get_referents(obj):
            if id(ref) in seen or _is_shared(ref):
                continue
            # The walk's own references (the referents list, ``ref``, the call argument)
            # are in _OWNED_REFCOUNT; anything beyond one container means shared.
            if sys.getrefcount(ref) > _OWNED_REFCOUNT:
                continue
            seen.add(id(ref))
            total += sys.getsizeof(ref)
            stack.append(ref)
    return total


def _calibrate_getattr() -> int:
    """The reference count a value held only by a session slot shows after getattr."""
    session = Session.__new__(Session)
    session.metadata = {}
    value = getattr(session, "metadata")  # noqa: B009 - the same access size_breakdown makes
    return sys.getrefcount(value)


_FIELD_REFCOUNT: Final = _calibrate_getattr()


def size_breakdown(session: Session) -> dict[str, int]:
    """Bytes the session keeps alive, by part: ``"object"`` (the slots object) and each field.

    Shared parts (interned capabilities, enum members, values also referenced elsewhere)
    count 0. The values sum to ``estimate_memory(session)``.
    """
    seen = {id(session)}
    parts = {"object": sys.getsizeof(session)}
    for name in FIELDS:
        value = getattr(session, name)
        # A value referenced from outside the session too would outlive it: shared.
        if id(value) in seen or _is_shared(value) or sys.getrefcount(value) > _FIELD_REFCOUNT:
            parts[name] = 0
        else:
            parts[name] = _owned_size(value, seen)
    return parts


def estimate_memory(session: Session) -> int:
    """Bytes freed if ``session`` were dropped: the sum of ``size_breakdown(session)``."""
    return sum(size_breakdown(session).values())
