"""Newline framing: frames, tails, CRLF, and the bound on an over-long line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connscale.core.protocol.framing import split_frames, turn_cut


def test_complete_frames_and_tail() -> None:
    frames, tail, too_large = split_frames(None, b'{"a":1}\n{"b":2}\r\n{"c"', 100)
    assert frames == [b'{"a":1}', b'{"b":2}']
    assert tail == bytearray(b'{"c"')
    assert not too_large


def test_tail_is_completed_by_the_next_read() -> None:
    _frames, tail, _ = split_frames(None, b'{"c"', 100)
    frames, tail, too_large = split_frames(tail, b":3}\n", 100)
    assert frames == [b'{"c":3}']
    assert tail is None
    assert not too_large


def test_empty_lines_are_skipped() -> None:
    assert split_frames(None, b"\n\r\n\nx\n", 10).frames == [b"x"]


def test_complete_line_over_the_limit_stops_parsing() -> None:
    frames, tail, too_large = split_frames(None, b"ok\n" + b"x" * 11 + b"\nlater\n", 10)
    assert frames == [b"ok"]
    assert too_large
    assert tail is None


def test_incomplete_line_over_the_limit_is_never_buffered_whole() -> None:
    tail = None
    for _ in range(5):
        result = split_frames(tail, b"y" * 4, 10)
        tail = result.tail
        if result.too_large:
            break
    assert result.too_large
    assert result.tail is None  # dropped after at most limit + one read


@given(
    st.lists(
        st.binary(min_size=1, max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b),
        max_size=8,
    ),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=20),
)
def test_any_split_gives_the_same_frames(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    got: list[bytes] = []
    tail = None
    position = 0
    index = 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        index += 1
        result = split_frames(tail, stream[position : position + size], 1000)
        position += size
        got.extend(result.frames)
        tail = result.tail
        assert not result.too_large
    assert got == lines
    assert tail is None


@given(st.binary(max_size=300))
def test_garbage_never_raises_and_respects_the_limit(data: bytes) -> None:
    result = split_frames(None, data, 50)
    assert all(len(frame) <= 50 for frame in result.frames)
    assert result.tail is None or len(result.tail) <= 51
    assert result.tail is None or len(result.tail) <= 50 or result.tail.endswith(b"\r")


def test_a_line_of_exactly_the_limit_split_inside_its_crlf_is_accepted() -> None:
    """Regression (atheris): the CR of a CRLF cut from its LF made a full-size line too large."""
    first = split_frames(None, b"abc\r", 3)
    assert not first.too_large and first.tail == bytearray(b"abc\r")
    second = split_frames(first.tail, b"\nxyz\r\n", 3)
    assert second == ([b"abc", b"xyz"], None, False)
    assert split_frames(None, b"abcd\r", 3).too_large  # but a real over-long line is not


def test_turn_cut_ends_a_turn_only_when_more_frames_follow() -> None:
    data = b"a\nb\nc\n"
    assert turn_cut(data, 0, 2) == 4  # "a\nb\n" now, "c\n" next turn
    assert turn_cut(data, 4, 2) is None  # one frame left: fits in the turn
    assert turn_cut(data, 0, 3) is None  # exactly one turn
    assert turn_cut(b"a\nb\npartial", 0, 2) is None  # a tail is not a frame
    assert turn_cut(b"", 0, 1) is None
