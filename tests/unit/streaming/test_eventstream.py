"""AWS event-stream decoder: frames whole and split, both CRCs, bounds, headers."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from extproc.streaming.errors import StreamLimitError
from extproc.streaming.eventstream import (
    EventStreamCRCError,
    EventStreamDecoder,
    EventStreamError,
    encode_event,
    encode_exception,
    encode_message,
)


def _frames() -> bytes:
    return (
        encode_event("messageStart", b'{"role":"assistant"}')
        + encode_event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"h\xc3\xa9"}}')
        + encode_exception("throttlingException", b'{"message":"slow down"}')
    )


def test_whole_frames_decode_with_headers_and_payloads() -> None:
    msgs = EventStreamDecoder().feed(_frames())
    assert [m.event_type for m in msgs] == ["messageStart", "contentBlockDelta", ""]
    assert [m.message_type for m in msgs] == ["event", "event", "exception"]
    assert msgs[2].header(":exception-type") == "throttlingException"
    assert msgs[1].payload == b'{"contentBlockIndex":0,"delta":{"text":"h\xc3\xa9"}}'


@pytest.mark.parametrize("step", [1, 2, 3, 7, 13, 16, 100])
def test_frames_split_anywhere_decode_the_same(step: int) -> None:
    data = _frames()
    dec = EventStreamDecoder()
    got = []
    for i in range(0, len(data), step):
        got += dec.feed(data[i : i + step])
    dec.finish()
    assert got == EventStreamDecoder().feed(data)
    assert dec.buffered == 0


def test_every_header_type_round_trips() -> None:
    u = uuid.uuid4()
    hdrs = b"".join(
        [
            b"\x01t\x00",
            b"\x01f\x01",
            b"\x01b\x02\xff",
            b"\x01s\x03" + struct.pack(">h", -2),
            b"\x01i\x04" + struct.pack(">i", 7),
            b"\x01l\x05" + struct.pack(">q", 1 << 40),
            b"\x01y\x06\x00\x02ab",
            b"\x01S\x07\x00\x02cd",
            b"\x01T\x08" + struct.pack(">q", 1700000000000),
            b"\x01u\x09" + u.bytes,
        ]
    )
    msg = EventStreamDecoder().feed(_raw_frame(hdrs, b"x"))[0]
    assert msg.headers == {
        "t": True,
        "f": False,
        "b": -1,
        "s": -2,
        "i": 7,
        "l": 1 << 40,
        "y": b"ab",
        "S": "cd",
        "T": 1700000000000,
        "u": u,
    }
    assert msg.payload == b"x"


def _raw_frame(headers: bytes, payload: bytes, total: int | None = None) -> bytes:
    total = 16 + len(headers) + len(payload) if total is None else total
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def test_bad_message_crc_is_a_crc_error() -> None:
    frame = bytearray(encode_event("x", b"{}"))
    frame[-6] ^= 0x01  # a payload byte
    with pytest.raises(EventStreamCRCError, match="message CRC"):
        EventStreamDecoder().feed(bytes(frame))


def test_bad_prelude_crc_is_refused_before_lengths_are_believed() -> None:
    frame = bytearray(encode_event("x", b"{}"))
    frame[0:4] = struct.pack(">I", 0x7FFFFFFF)  # a huge length, prelude CRC now wrong
    dec = EventStreamDecoder()
    with pytest.raises(EventStreamCRCError, match="prelude CRC"):
        dec.feed(bytes(frame[:12]))


def test_huge_frame_length_is_a_limit_error_before_buffering() -> None:
    prelude = struct.pack(">II", 1 << 30, 0)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    dec = EventStreamDecoder(max_frame_bytes=4096)
    with pytest.raises(StreamLimitError, match="max_frame_bytes"):
        dec.feed(prelude)


def test_huge_headers_length_is_refused() -> None:
    prelude = struct.pack(">II", 64, 1 << 31)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    with pytest.raises(EventStreamError, match="headers length"):
        EventStreamDecoder().feed(prelude)


def test_frame_shorter_than_its_own_prelude_is_refused() -> None:
    prelude = struct.pack(">II", 8, 0)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    with pytest.raises(EventStreamError, match="below the minimum"):
        EventStreamDecoder().feed(prelude)


def test_header_running_past_its_section_is_an_error() -> None:
    frame = _raw_frame(b"\x05ab", b"")  # name length 5, only 2 bytes there
    with pytest.raises(EventStreamError, match="runs past"):
        EventStreamDecoder().feed(frame)


def test_unknown_header_type_is_an_error() -> None:
    with pytest.raises(EventStreamError, match="unknown type"):
        EventStreamDecoder().feed(_raw_frame(b"\x01a\x0c", b""))


def test_truncated_stream_is_an_error_at_finish() -> None:
    frame = encode_event("x", b"{}")
    dec = EventStreamDecoder()
    assert dec.feed(frame[:-3]) == []
    with pytest.raises(EventStreamError, match="ended inside a frame"):
        dec.finish()


def test_encode_message_matches_decoder() -> None:
    frame = encode_message({":event-type": "chunk", "n": 3}, b"abc")
    (msg,) = EventStreamDecoder().feed(frame)
    assert msg.headers == {":event-type": "chunk", "n": 3}


def test_agrees_with_botocores_parser_and_the_fakes_encoder() -> None:
    # Three independent implementations: botocore's parser, the fake's encoder, ours.
    from botocore.eventstream import EventStreamBuffer

    import fake_cloud

    ours = encode_event("contentBlockDelta", b'{"delta":{"text":"x"}}')
    fakes = fake_cloud.event("contentBlockDelta", {"delta": {"text": "x"}})
    buf = EventStreamBuffer()
    buf.add_data(ours + fakes)
    parsed = list(buf)
    assert [m.headers[":event-type"] for m in parsed] == ["contentBlockDelta"] * 2
    assert parsed[0].payload == b'{"delta":{"text":"x"}}'
    decoded = EventStreamDecoder().feed(b"".join(fake_cloud.cut(ours + fakes)))
    assert [m.payload for m in decoded] == [parsed[0].payload, parsed[1].payload]
