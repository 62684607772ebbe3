from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.streaming.errors import StreamDecodeError, StreamLimitError
from extproc.streaming.ndjson import NDJSONDecoder

STREAM = '{"a":"ü"}\n\n{"b":[1,2]}\r\n{"c":"😀"}'.encode()
EXPECTED = [{"a": "ü"}, {"b": [1, 2]}, {"c": "😀"}]


def test_feed_and_trailing_line_on_finish() -> None:
    dec = NDJSONDecoder()
    assert dec.feed(STREAM) == EXPECTED[:2]
    assert dec.finish() == EXPECTED[2:]
    assert dec.finish() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=10))
def test_random_splits(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    dec = NDJSONDecoder()
    out = []
    for a, b in zip([0, *points], [*points, len(STREAM)], strict=True):
        out += dec.feed(STREAM[a:b])
    out += dec.finish()
    assert out == EXPECTED


def test_invalid_json_line() -> None:
    with pytest.raises(StreamDecodeError, match="invalid JSON"):
        NDJSONDecoder().feed(b'{"ok":1}\n{broken\n')


def test_line_limit() -> None:
    dec = NDJSONDecoder(max_line_bytes=10)
    with pytest.raises(StreamLimitError, match="max_line_bytes"):
        dec.feed(b'{"k":"' + b"v" * 20)
