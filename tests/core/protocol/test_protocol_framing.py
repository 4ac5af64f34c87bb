"""Newline framing: frames, tails, CRLF, the bound on an over-long line, incremental search."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connscale.core.protocol.framing import TOO_LARGE, LineReader


def frames_of(reader: LineReader) -> list[bytes]:
    found = []
    while (frame := reader.next_frame()) is not None:
        found.append(frame)
        if frame is TOO_LARGE:
            break
    return found


def test_complete_frames_and_tail() -> None:
    reader = LineReader(100, b'{"a":1}\n{"b":2}\r\n{"c"')
    assert frames_of(reader) == [b'{"a":1}', b'{"b":2}']
    assert len(reader) == 4  # the tail waits
    reader.feed(b":3}\n")
    assert frames_of(reader) == [b'{"c":3}']
    assert len(reader) == 0


def test_empty_lines_are_skipped() -> None:
    assert frames_of(LineReader(10, b"\n\r\n\nx\n")) == [b"x"]


def test_complete_line_over_the_limit_stops_the_stream() -> None:
    reader = LineReader(10, b"ok\n" + b"x" * 11 + b"\nlater\n")
    assert frames_of(reader) == [b"ok", TOO_LARGE]
    assert reader.too_large and len(reader) == 0
    reader.feed(b"more\n")
    assert reader.next_frame() is None  # nothing after a too-large frame


def test_incomplete_line_over_the_limit_is_never_buffered_whole() -> None:
    reader = LineReader(10)
    for _ in range(5):
        reader.feed(b"y" * 4)
        if reader.next_frame() is TOO_LARGE:
            break
        assert len(reader) <= 11
    assert reader.too_large and len(reader) == 0


def test_a_line_of_exactly_the_limit_split_inside_its_crlf_is_accepted() -> None:
    """Regression (atheris): the CR of a CRLF cut from its LF made a full-size line too large."""
    reader = LineReader(3, b"abc\r")
    assert reader.next_frame() is None and not reader.too_large
    reader.feed(b"\nxyz\r\n")
    assert frames_of(reader) == [b"abc", b"xyz"]
    assert LineReader(3, b"abcd\r").next_frame() is TOO_LARGE  # a real over-long line is


def test_consumed_input_is_dropped_as_it_grows() -> None:
    reader = LineReader(1000)
    for index in range(1000):
        reader.feed(b"%d\n" % index)
        assert reader.next_frame() == b"%d" % index
    assert len(reader._buffer) < 16  # consumed bytes do not pile up


def test_search_resumes_where_it_stopped() -> None:
    """A trickled line is searched once: the reader never looks at a byte twice."""
    reader = LineReader(1 << 20)
    for _ in range(100):
        reader.feed(b"x" * 64)
        assert reader.next_frame() is None
        assert reader._searched == len(reader._buffer)
    reader.feed(b"\n")
    assert reader.next_frame() == b"x" * 6400


@given(
    st.lists(
        st.binary(min_size=1, max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b),
        max_size=8,
    ),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=20),
)
def test_any_split_gives_the_same_frames(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    reader = LineReader(1000)
    got: list[bytes] = []
    position = 0
    index = 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        index += 1
        reader.feed(stream[position : position + size])
        position += size
        got.extend(frames_of(reader))
    assert got == lines
    assert len(reader) == 0


@given(st.lists(st.binary(max_size=120), max_size=6))
def test_garbage_never_raises_and_respects_the_limit(reads: list[bytes]) -> None:
    reader = LineReader(50)
    for data in reads:
        reader.feed(data)
        for frame in frames_of(reader):
            assert frame is TOO_LARGE or 0 < len(frame) <= 50
        assert len(reader) <= 51 + 120
        assert reader.too_large or len(reader) <= 51
