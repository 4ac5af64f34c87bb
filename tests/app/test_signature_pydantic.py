"""pydantic models as parameter and return types (pydantic is optional), and the input and
output schemas the official SDK's MCPServer derives for the same functions."""

from __future__ import annotations

import asyncio
import enum
from typing import Annotated, Any, Literal

import msgspec
import pytest

pydantic = pytest.importorskip("pydantic")

from connscale.app import App  # noqa: E402
from connscale.app._schema import decode_hook  # noqa: E402
from connscale.app._signature import inspect_function, output_plan  # noqa: E402


class Address(pydantic.BaseModel):
    street: str
    number: int = 1


class Person(pydantic.BaseModel):
    """Someone."""

    name: str
    address: Address


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Point(pydantic.BaseModel):
    """A point."""

    x: int
    y: int = 0


@pydantic.dataclasses.dataclass
class Box:
    width: float
    label: str = "box"


def test_pydantic_model_parameters() -> None:
    def tool(
        person: Person,
        age: int = pydantic.Field(3, description="years"),
        size: Annotated[int, pydantic.Field(description="how big")] = 2,
    ) -> str:
        return person.name

    info = inspect_function(tool, kind="tool")
    schema = info.input_schema
    person = schema["properties"]["person"]  # pydantic's own schema, inlined by msgspec
    assert person["description"] == "Someone."
    assert person["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert schema["$defs"]["Address"]["required"] == ["street"]
    assert schema["properties"]["age"] == {"type": "integer", "default": 3, "description": "years"}
    assert schema["properties"]["size"]["description"] == "how big"
    assert info.needs_hook
    converted = msgspec.convert(
        {"person": {"name": "A", "address": {"street": "S"}}},
        info.arguments_type,
        dec_hook=decode_hook,
    )
    assert converted.person == Person(name="A", address=Address(street="S"))
    assert converted.age == 3
    with pytest.raises(msgspec.ValidationError, match="person"):
        msgspec.convert(
            {"person": {"name": "A", "address": {"street": 5}}},
            info.arguments_type,
            dec_hook=decode_hook,
        )


def test_pydantic_model_return_is_structured() -> None:
    def tool() -> Person:
        return Person(name="A", address=Address(street="S"))

    info = inspect_function(tool, kind="tool")
    plan = output_plan(info, None)
    assert plan is not None and not plan.wrap
    assert plan.schema["title"] == "Person"
    assert plan.schema["$defs"]["Address"]["properties"]["number"]["default"] == 1
    result = plan.convert(tool())
    assert result["structuredContent"] == {
        "name": "A",
        "address": {"street": "S", "number": 1},
    }


# -- against the official SDK --------------------------------------------------------------------


def _normalise(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """Inline $refs, drop titles, sort enums: what both generators must agree on."""
    if defs is None and isinstance(schema, dict):
        defs = schema.get("$defs", {})
    if isinstance(schema, dict):
        if "$ref" in schema:
            assert defs is not None
            target = dict(defs[schema["$ref"].rsplit("/", 1)[-1]])
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        out = {
            key: _normalise(value, defs)
            for key, value in schema.items()
            if key not in ("title", "$defs")
        }
        if "enum" in out:
            out["enum"] = sorted(out["enum"])
        return out
    if isinstance(schema, list):
        return [_normalise(item, defs) for item in schema]
    return schema


def plain(text: str, count: int = 1, ratio: float | None = None) -> int:
    """Plain."""
    return count


def collections(names: list[str], scores: dict[str, int], flags: list[bool] = []) -> list[int]:  # noqa: B006
    return []


def enums(choice: Literal["a", "b"] = "a", color: Color = Color.RED) -> bool:
    return True


def nested(point: Point, box: Box | None = None) -> Point:
    return point


def described(
    size: Annotated[int, pydantic.Field(description="how big")], tag: str = ""
) -> dict[str, int]:
    return {"size": size}


def with_defaults(items: list[int] = [1, 2], mapping: dict[str, str] | None = None) -> float:  # noqa: B006
    return 0.0


@pytest.mark.sdk
@pytest.mark.parametrize(
    "function",
    [plain, collections, enums, nested, described, with_defaults],
    ids=lambda f: f.__name__,
)
def test_schemas_agree_with_the_official_sdk(function: Any) -> None:
    server_module = pytest.importorskip("mcp.server.mcpserver")
    server = server_module.MCPServer("compare")
    server.add_tool(function)
    (theirs,) = asyncio.run(server.list_tools())
    ours = inspect_function(function, kind="tool")
    assert _normalise(ours.input_schema) == _normalise(theirs.input_schema)
    plan = output_plan(ours, None)
    assert plan is not None
    assert _normalise(plan.schema) == _normalise(theirs.output_schema)


@pytest.mark.sdk
def test_str_return_differs_from_the_sdk_on_purpose() -> None:
    """The SDK wraps a str return as structured {"result": ...}; a str is plain text here."""
    server_module = pytest.importorskip("mcp.server.mcpserver")
    server = server_module.MCPServer("compare")

    def echo(text: str) -> str:
        return text

    server.add_tool(echo)
    (theirs,) = asyncio.run(server.list_tools())
    assert theirs.output_schema is not None
    assert output_plan(inspect_function(echo, kind="tool"), None) is None


def test_pydantic_through_the_app() -> None:
    app = App("p")

    @app.tool()
    def move(person: Person, street: str) -> Person:
        return person.model_copy(update={"address": Address(street=street)})

    result = app.call_tool(
        "move", {"person": {"name": "A", "address": {"street": "Old"}}, "street": "New"}, None
    )
    assert result["structuredContent"] == {
        "name": "A",
        "address": {"street": "New", "number": 1},
    }
    invalid = app.call_tool("move", {"person": {"name": 1}, "street": "x"}, None)
    assert invalid["isError"] and "'person'" in invalid["content"][0]["text"]
