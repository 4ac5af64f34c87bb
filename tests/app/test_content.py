"""Content helpers and the conversion of return values into tool results, prompt messages
and resource contents."""

from __future__ import annotations

import base64
import dataclasses
import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from connscale.app import (
    Annotations,
    AssistantMessage,
    Audio,
    EmbeddedResource,
    Icon,
    Image,
    Message,
    ResourceLink,
    Text,
    ToolAnnotations,
    ToolResult,
    UserMessage,
)
from connscale.app._content import (
    content_block,
    prompt_messages,
    resource_contents,
    unstructured_result,
)
from connscale.errors import ConfigurationError

PNG = b"\x89PNG\r\n\x1a\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Pair:
    left: str
    right: datetime.date


# -- helpers --------------------------------------------------------------------------------------


def test_image_from_bytes_and_format() -> None:
    assert Image(PNG).to_dict() == {"type": "image", "data": b64(PNG), "mimeType": "image/png"}
    assert Image(PNG, format="JPEG").mime_type == "image/jpeg"
    assert Image(PNG, mime_type="image/x-custom").mime_type == "image/x-custom"


def test_image_and_audio_from_files(tmp_path: Path) -> None:
    picture = tmp_path / "chart.webp"
    picture.write_bytes(PNG)
    sound = tmp_path / "clip.mp3"
    sound.write_bytes(b"ID3")
    assert Image(path=picture).to_dict()["mimeType"] == "image/webp"
    assert Image(path=picture).to_dict()["data"] == b64(PNG)
    assert Audio(path=sound).to_dict() == {
        "type": "audio",
        "data": b64(b"ID3"),
        "mimeType": "audio/mpeg",
    }
    assert Audio(b"RIFF").mime_type == "audio/wav"
    unknown = tmp_path / "blob.zzz-unknown"
    unknown.write_bytes(b"?")
    assert Image(path=unknown).mime_type == "application/octet-stream"


def test_media_needs_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        Image()
    with pytest.raises(ConfigurationError):
        Audio(b"x", path=tmp_path / "x.wav")


def test_blocks_with_annotations_and_meta() -> None:
    text = Text("hi", annotations=Annotations(audience=["user"], priority=0.5), meta={"k": 1})
    assert text.to_dict() == {
        "type": "text",
        "text": "hi",
        "annotations": {"audience": ["user"], "priority": 0.5},
        "_meta": {"k": 1},
    }
    assert Annotations(last_modified="2026-12-01T00:00:00Z").__struct_config__.omit_defaults
    assert msgspec.to_builtins(Annotations(last_modified="x")) == {"lastModified": "x"}


def test_embedded_resource_text_and_blob() -> None:
    assert EmbeddedResource("test://a", text="t", mime_type="text/plain").to_dict() == {
        "type": "resource",
        "resource": {"uri": "test://a", "mimeType": "text/plain", "text": "t"},
    }
    assert EmbeddedResource("test://b", blob=b"\x00").to_dict() == {
        "type": "resource",
        "resource": {"uri": "test://b", "blob": "AA=="},
    }
    with pytest.raises(ConfigurationError):
        EmbeddedResource("test://c")


def test_resource_link() -> None:
    link = ResourceLink(
        "test://a", "a", title="A", mime_type="text/plain", size=3, icons=[Icon("https://i")]
    )
    assert link.to_dict() == {
        "type": "resource_link",
        "uri": "test://a",
        "name": "a",
        "title": "A",
        "mimeType": "text/plain",
        "size": 3,
        "icons": [{"src": "https://i"}],
    }


def test_descriptor_parts_encode_camel_case() -> None:
    hints = ToolAnnotations(title="T", read_only_hint=True, open_world_hint=False)
    assert msgspec.to_builtins(hints) == {
        "title": "T",
        "readOnlyHint": True,
        "openWorldHint": False,
    }
    icon = Icon("data:image/png;base64,AA", mime_type="image/png", sizes=["48x48"], theme="dark")
    assert msgspec.to_builtins(icon) == {
        "src": "data:image/png;base64,AA",
        "mimeType": "image/png",
        "sizes": ["48x48"],
        "theme": "dark",
    }


def test_content_block_accepts_helpers_dicts_text_and_bytes() -> None:
    assert content_block("x") == {"type": "text", "text": "x"}
    assert content_block({"type": "text", "text": "y"}) == {"type": "text", "text": "y"}
    assert content_block(PNG)["type"] == "image"
    with pytest.raises(TypeError):
        content_block({"kind": "text"})
    with pytest.raises(TypeError):
        content_block(3)


# -- tool results ---------------------------------------------------------------------------------


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello", text("hello")),
        (None, {"content": [], "isError": False}),
        (3, text("3")),
        (2.5, text("2.5")),
        (True, text("true")),
        ([1, "a"], text('[1,"a"]')),
        (PNG, {"content": [Image(PNG).to_dict()], "isError": False}),
        (Image(PNG), {"content": [Image(PNG).to_dict()], "isError": False}),
        (Audio(b"a"), {"content": [Audio(b"a").to_dict()], "isError": False}),
        (
            [Text("a"), {"type": "text", "text": "b"}, Image(PNG)],
            {
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": "b"},
                    Image(PNG).to_dict(),
                ],
                "isError": False,
            },
        ),
        ([], {"content": [], "isError": False}),
    ],
)
def test_unstructured_results(value: Any, expected: dict[str, Any]) -> None:
    assert unstructured_result(value) == expected


@pytest.mark.parametrize(
    ("value", "structured"),
    [
        ({"a": 1}, {"a": 1}),
        (Point(1, 2), {"x": 1, "y": 2}),
        (Pair("l", datetime.date(2026, 12, 1)), {"left": "l", "right": "2026-12-01"}),
    ],
)
def test_objects_become_structured_content_and_json_text(value: Any, structured: Any) -> None:
    result = unstructured_result(value)
    assert result["structuredContent"] == structured
    assert msgspec.json.decode(result["content"][0]["text"]) == structured
    assert "structuredContent" not in unstructured_result(value, structured=False)


def test_tool_result_is_sent_as_given() -> None:
    result = ToolResult(
        ["a", Text("b"), {"type": "image", "data": "AA", "mimeType": "image/png"}],
        structured_content={"k": 1},
        is_error=True,
        meta={"m": 1},
    )
    assert unstructured_result(result) == {
        "content": [
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b"},
            {"type": "image", "data": "AA", "mimeType": "image/png"},
        ],
        "isError": True,
        "structuredContent": {"k": 1},
        "_meta": {"m": 1},
    }


def test_unknown_objects_become_their_text() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    assert unstructured_result([Opaque()]) == text('["opaque!"]')


# -- prompt messages --------------------------------------------------------------------------


def test_prompt_messages() -> None:
    assert prompt_messages("hi") == [{"role": "user", "content": {"type": "text", "text": "hi"}}]
    embedded = EmbeddedResource("test://r", text="body")
    assert prompt_messages(
        [
            UserMessage("q"),
            AssistantMessage(Image(PNG)),
            {"role": "user", "content": "plain"},
            {"role": "assistant", "content": {"type": "text", "text": "dict"}},
            UserMessage(embedded),
            Text("bare block"),
        ]
    ) == [
        {"role": "user", "content": {"type": "text", "text": "q"}},
        {"role": "assistant", "content": Image(PNG).to_dict()},
        {"role": "user", "content": {"type": "text", "text": "plain"}},
        {"role": "assistant", "content": {"type": "text", "text": "dict"}},
        {"role": "user", "content": embedded.to_dict()},
        {"role": "user", "content": {"type": "text", "text": "bare block"}},
    ]


def test_prompt_message_errors() -> None:
    with pytest.raises(TypeError):
        prompt_messages([{"role": "system", "content": "x"}])
    with pytest.raises(ConfigurationError):
        Message("system", "x")  # type: ignore[arg-type]


# -- resource contents --------------------------------------------------------------------------


def test_resource_contents() -> None:
    assert resource_contents("test://t", "text", None) == [
        {"uri": "test://t", "mimeType": "text/plain", "text": "text"}
    ]
    assert resource_contents("test://b", PNG, "image/png") == [
        {"uri": "test://b", "mimeType": "image/png", "blob": b64(PNG)}
    ]
    assert resource_contents("test://b", b"\x00", None)[0]["mimeType"] == (
        "application/octet-stream"
    )
    assert resource_contents("test://i", Image(PNG), None) == [
        {"uri": "test://i", "mimeType": "image/png", "blob": b64(PNG)}
    ]
    assert resource_contents("test://j", {"a": [1]}, None) == [
        {"uri": "test://j", "mimeType": "application/json", "text": '{"a":[1]}'}
    ]
