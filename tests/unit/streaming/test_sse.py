from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.streaming.errors import StreamLimitError
from extproc.streaming.sse import SSEDecoder, SSEEvent, encode_sse

# A stream exercising every line ending, comments, multi-line data, the optional
# space, ids, named events, a BOM and multi-byte UTF-8 (2-, 3- and 4-byte chars).
STREAM = (
    b"\xef\xbb\xbf: keep-alive comment\r\n"
    b"event: message_start\r\n"
    b'data: {"text":"h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80"}\r\n'
    b"\r\n"
    b"data:no-space\n"
    b"data: second line\n"
    b"id: 7\n"
    b"\n"
    b"event: ping\r"
    b"data: cr only\r"
    b"\r"
    b"data\n"
    b"\n"
    b"event: ignored-no-data\n"
    b"\n"
    b"data:  two spaces\r\n\r\n"
)

EXPECTED = [
    SSEEvent("message_start", '{"text":"héllo 世界 😀"}', None),
    SSEEvent("message", "no-space\nsecond line", "7"),
    SSEEvent("ping", "cr only", "7"),
    SSEEvent("message", "", "7"),
    SSEEvent("message", " two spaces", "7"),
]


def test_single_feed_parses_all_features() -> None:
    dec = SSEDecoder()
    assert dec.feed(STREAM) == EXPECTED
    assert dec.finish() == []


def test_byte_at_a_time() -> None:
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for i in range(len(STREAM)):
        out += dec.feed(STREAM[i : i + 1])
    assert out == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_random_splits_match_single_feed(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for p in pieces:
        out += dec.feed(p)
    out += dec.finish()
    assert out == EXPECTED


def test_split_between_cr_and_lf_does_not_create_blank_line() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    # The "\n" completing CRLF must not be taken as an empty (dispatching) line.
    assert dec.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("message", "a\nb", None)]


def test_split_inside_utf8_character() -> None:
    dec = SSEDecoder()
    raw = "data: ü€\n\n".encode()
    assert dec.feed(raw[:7]) == []  # ends in the middle of "ü"
    assert dec.feed(raw[7:]) == [SSEEvent("message", "ü€", None)]


def test_bom_split_across_chunks_is_stripped_only_at_start() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"\xef") == []
    assert dec.feed(b"\xbb") == []
    assert dec.feed(b"\xbfdata: x\n\n") == [SSEEvent("message", "x", None)]


def test_unterminated_event_is_discarded_on_finish() -> None:
    dec = SSEDecoder()
    out = dec.feed(b"data: complete\n\ndata: dangling\n")
    assert out == [SSEEvent("message", "complete", None)]
    assert dec.finish() == []


def test_endless_line_raises_limit_error() -> None:
    dec = SSEDecoder(max_line_bytes=64)
    dec.feed(b"data: " + b"x" * 40)
    with pytest.raises(StreamLimitError, match="max_line_bytes"):
        dec.feed(b"x" * 40)


def test_complete_overlong_line_also_rejected() -> None:
    dec = SSEDecoder(max_line_bytes=16)
    with pytest.raises(StreamLimitError, match="max_line_bytes"):
        dec.feed(b"data: " + b"y" * 32 + b"\n\n")


def test_event_limit_spans_lines() -> None:
    dec = SSEDecoder(max_line_bytes=100, max_event_bytes=50)
    dec.feed(b"data: " + b"a" * 20 + b"\n")
    with pytest.raises(StreamLimitError, match="max_event_bytes"):
        dec.feed(b"data: " + b"a" * 40 + b"\n")


def test_limit_error_is_value_error() -> None:
    assert issubclass(StreamLimitError, ValueError)


def test_encode_sse_roundtrip() -> None:
    assert encode_sse(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_sse("x", event="ping") == b"event: ping\ndata: x\n\n"
    multi = encode_sse("l1\nl2\r\nl3")
    assert multi == b"data: l1\ndata: l2\ndata: l3\n\n"
    assert SSEDecoder().feed(multi) == [SSEEvent("message", "l1\nl2\nl3", None)]
