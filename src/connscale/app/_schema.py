"""JSON Schema (2020-12) and conversion for Python types, through msgspec.

msgspec derives schemas for builtins, Structs, dataclasses, TypedDicts, enums, Literals,
unions and ``Annotated[..., msgspec.Meta(...)]``. pydantic models, which msgspec does not
know, go through its hooks: their own JSON schema, ``model_validate`` to convert. pydantic is
never imported here; a type can only be a pydantic model if the caller imported pydantic.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, Final

import msgspec

__all__ = [
    "DEFS_PREFIX",
    "decode_hook",
    "is_pydantic_model_type",
    "schema_of",
    "schema_problem",
    "schemas_of",
]

DEFS_PREFIX: Final = "#/$defs/"


def is_pydantic_model_type(annotation: object) -> bool:
    """Whether ``annotation`` is a pydantic model class (False when pydantic is not loaded)."""
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None
        and isinstance(annotation, type)
        and issubclass(annotation, pydantic.BaseModel)
    )


def _schema_hook(annotation: type) -> dict[str, Any]:
    if is_pydantic_model_type(annotation):
        schema: dict[str, Any] = annotation.model_json_schema(  # type: ignore[attr-defined]
            ref_template=DEFS_PREFIX + "{model}"
        )
        return schema
    raise NotImplementedError


def decode_hook(annotation: type, value: Any) -> Any:
    """msgspec ``dec_hook``: pydantic models validate themselves."""
    if is_pydantic_model_type(annotation):
        return annotation.model_validate(value)  # type: ignore[attr-defined]
    raise NotImplementedError


def _hoist_defs(node: Any, defs: dict[str, Any]) -> Any:
    """Move nested ``$defs`` (from pydantic's schemas) up to the root, where refs point.

    Also gives an ``enum`` of strings (msgspec's Literal and Enum schemas) its ``"type"``.
    """
    if isinstance(node, dict):
        values = node.get("enum")
        if "type" not in node and isinstance(values, list) and values:
            if all(isinstance(value, str) for value in values):
                node["type"] = "string"
            elif all(isinstance(value, int) and not isinstance(value, bool) for value in values):
                node["type"] = "integer"
        nested = node.pop("$defs", None)
        if isinstance(nested, dict):
            for name, definition in nested.items():
                defs.setdefault(name, _hoist_defs(definition, defs))
        for key, value in node.items():
            node[key] = _hoist_defs(value, defs)
    elif isinstance(node, list):
        return [_hoist_defs(item, defs) for item in node]
    return node


def _inline_root(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A root that is a bare ``$ref`` becomes the definition itself (an object root)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(DEFS_PREFIX) and len(schema) == 1:
        name = ref.removeprefix(DEFS_PREFIX)
        if not _refers_to(defs, name):
            return dict(defs.pop(name))
        return dict(defs[name])
    return schema


def _refers_to(node: Any, name: str) -> bool:
    """Whether ``node`` holds a ``$ref`` to definition ``name`` (a recursive type keeps it)."""
    target = DEFS_PREFIX + name
    if isinstance(node, dict):
        if node.get("$ref") == target:
            return True
        return any(_refers_to(value, name) for value in node.values())
    if isinstance(node, list):
        return any(_refers_to(item, name) for item in node)
    return False


def schemas_of(types: Iterable[Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The schema of each type and the shared ``$defs`` they refer to.

    Raises ``TypeError`` for a type msgspec cannot describe.
    """
    roots, components = msgspec.json.schema_components(
        tuple(types), schema_hook=_schema_hook, ref_template=DEFS_PREFIX + "{name}"
    )
    defs: dict[str, Any] = {}
    for name, definition in components.items():
        defs[name] = _hoist_defs(definition, defs)
    return [_hoist_defs(root, defs) for root in roots], defs


def schema_of(annotation: Any) -> dict[str, Any]:
    """A standalone schema for one type: an object root inlined, ``$defs`` when needed."""
    (root,), defs = schemas_of([annotation])
    root = _inline_root(root, defs)
    if defs:
        root["$defs"] = defs
    return root


def schema_problem(error: Exception) -> str:
    """What msgspec could not describe, in one line (its message may hold a list of advice
    before the line that names the type), for errors that must stay one line on a terminal."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
