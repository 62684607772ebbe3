"""Incremental decoder (and test encoder) for AWS's binary event-stream framing
(``application/vnd.amazon.eventstream``), as Bedrock's ``ConverseStream`` and
``InvokeModelWithResponseStream`` answer.

One message on the wire::

    total_length:u32 | headers_length:u32 | prelude_crc:u32 | headers | payload | message_crc:u32

all big-endian; ``prelude_crc`` is the CRC-32 of the first 8 bytes and
``message_crc`` the CRC-32 of everything before it. A header is
``name_len:u8 | name | type:u8 | value`` (types 0-9 below).

Upstream bytes arrive split anywhere (Envoy's chunks, TCP writes), so the
decoder keeps an undecoded tail. It is bounded: the prelude CRC is checked
before its lengths are believed, and a frame longer than ``max_frame_bytes`` is
refused before any of its body is buffered. Every malformed input raises a
named error (`EventStreamError` for bad bytes, `StreamLimitError` for a bound),
never hangs and never grows the buffer beyond the bound.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from extproc.streaming.errors import StreamDecodeError, StreamLimitError

_PRELUDE = 12  # total_length, headers_length, prelude_crc
_MIN_FRAME = _PRELUDE + 4  # no headers, no payload, message_crc
# AWS's own limits: a message of at most 16 MiB with at most 128 KiB of headers.
MAX_FRAME_BYTES = 16 << 20
MAX_HEADERS_BYTES = 128 << 10

HeaderValue = bool | int | bytes | str | uuid.UUID


class EventStreamError(StreamDecodeError):
    """The bytes are not a valid event stream (bad CRC, lengths, header)."""


class EventStreamCRCError(EventStreamError):
    """A prelude or message CRC-32 does not match (corrupted or forged bytes)."""


@dataclass(frozen=True, slots=True)
class EventMessage:
    headers: Mapping[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str:
        """A string header, "" when absent or not a string."""
        v = self.headers.get(name)
        return v if isinstance(v, str) else ""

    @property
    def message_type(self) -> str:
        return self.header(":message-type") or "event"

    @property
    def event_type(self) -> str:
        return self.header(":event-type")


def _crc(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    return zlib.crc32(data, start) & 0xFFFFFFFF


_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}


def _headers(raw: memoryview) -> dict[str, HeaderValue]:
    out: dict[str, HeaderValue] = {}
    pos, end = 0, len(raw)

    def need(n: int) -> None:
        if pos + n > end:
            raise EventStreamError("event-stream header runs past the headers section")

    while pos < end:
        need(1)
        name_len = raw[pos]
        pos += 1
        need(name_len + 1)
        try:
            name = bytes(raw[pos : pos + name_len]).decode()
        except UnicodeDecodeError:
            raise EventStreamError("event-stream header name is not UTF-8") from None
        pos += name_len
        kind = raw[pos]
        pos += 1
        value: HeaderValue
        if kind in (0, 1):
            value = kind == 0
        elif kind in _FIXED:
            fmt = _FIXED[kind]
            size = struct.calcsize(fmt)
            need(size)
            value = struct.unpack_from(fmt, raw, pos)[0]
            pos += size
        elif kind in (6, 7):
            need(2)
            (length,) = struct.unpack_from(">H", raw, pos)
            pos += 2
            need(length)
            data = bytes(raw[pos : pos + length])
            pos += length
            if kind == 7:
                try:
                    value = data.decode()
                except UnicodeDecodeError:
                    raise EventStreamError(f"event-stream header {name!r} is not UTF-8") from None
            else:
                value = data
        elif kind == 9:
            need(16)
            value = uuid.UUID(bytes=bytes(raw[pos : pos + 16]))
            pos += 16
        else:
            raise EventStreamError(f"event-stream header {name!r} has unknown type {kind}")
        out[name] = value
    return out


class EventStreamDecoder:
    """Bytes in, complete `EventMessage` objects out. One instance per stream."""

    __slots__ = ("_buf", "_max_frame", "_need")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max_frame = max(_MIN_FRAME, min(max_frame_bytes, MAX_FRAME_BYTES))
        self._buf = bytearray()
        self._need = 0  # total length of the frame being read (0: prelude not read yet)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[EventMessage]:
        buf = self._buf
        buf += data
        out: list[EventMessage] = []
        while True:
            if not self._need:
                if len(buf) < _PRELUDE:
                    break
                self._need = self._prelude(buf)
            if len(buf) < self._need:
                break
            total, self._need = self._need, 0
            out.append(self._message(memoryview(buf)[:total]))
            del buf[:total]
        return out

    def finish(self) -> None:
        """End of stream: a partial frame left over means the stream was cut."""
        left, self._need = len(self._buf), 0
        self._buf.clear()
        if left:
            raise EventStreamError(f"event stream ended inside a frame ({left} bytes left over)")

    def _prelude(self, buf: bytearray) -> int:
        total, headers_len, crc = struct.unpack_from(">III", buf, 0)
        if _crc(memoryview(buf)[:8]) != crc:
            raise EventStreamCRCError("event-stream prelude CRC mismatch")
        if total < _MIN_FRAME:
            raise EventStreamError(f"event-stream frame length {total} is below the minimum")
        if headers_len > MAX_HEADERS_BYTES or headers_len > total - _MIN_FRAME:
            raise EventStreamError(
                f"event-stream headers length {headers_len} does not fit the frame ({total} bytes)"
            )
        if total > self._max_frame:
            raise StreamLimitError(
                f"event-stream frame of {total} bytes exceeds max_frame_bytes ({self._max_frame})"
            )
        return total

    @staticmethod
    def _message(frame: memoryview) -> EventMessage:
        (headers_len,) = struct.unpack_from(">I", frame, 4)
        (crc,) = struct.unpack_from(">I", frame, len(frame) - 4)
        if _crc(frame[:-4]) != crc:
            raise EventStreamCRCError("event-stream message CRC mismatch")
        headers = _headers(frame[_PRELUDE : _PRELUDE + headers_len])
        return EventMessage(headers, bytes(frame[_PRELUDE + headers_len : -4]))


# -- encoding (the fakes and tests; the gateway never writes event streams) ------


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw = name.encode()
    head = bytes([len(raw)]) + raw
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        return head + b"\x04" + struct.pack(">i", value)
    if isinstance(value, str):
        data = value.encode()
        return head + b"\x07" + struct.pack(">H", len(data)) + data
    if isinstance(value, uuid.UUID):
        return head + b"\x09" + value.bytes
    return head + b"\x06" + struct.pack(">H", len(value)) + value


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One frame with real CRCs."""
    hdrs = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = _MIN_FRAME + len(hdrs) + len(payload)
    prelude = struct.pack(">II", total, len(hdrs))
    prelude += struct.pack(">I", _crc(prelude))
    body = prelude + hdrs + payload
    return body + struct.pack(">I", _crc(body))


def encode_event(event_type: str, payload: bytes) -> bytes:
    return encode_message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        payload,
    )


def encode_exception(exception_type: str, payload: bytes) -> bytes:
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload,
    )
