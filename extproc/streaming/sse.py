"""Incremental Server-Sent-Events decoder (WHATWG HTML "event stream" parsing).

Upstream bodies arrive in arbitrary chunks from Envoy: a chunk may end inside a
line, inside a multi-byte UTF-8 character, or between the ``\\r`` and ``\\n`` of
a CRLF. We therefore keep the undecoded tail as *bytes* and only decode complete
lines; the line terminators (CR, LF, CRLF) are all ASCII and can never occur
inside a UTF-8 multi-byte sequence, so splitting bytes on them is safe.

End of stream: following the WHATWG spec, an event that was not terminated by a
blank line when the stream ends is *discarded* by :meth:`SSEDecoder.finish`
("If the file ends in the middle of an event, before the final empty line, the
incomplete event is not dispatched"). Every provider we speak to terminates
events properly, so a dangling event means a truncated upstream response and
should not be presented as if it were complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from extproc.streaming.errors import StreamLimitError

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str  # event type; "message" when the stream gave none (per spec)
    data: str  # data lines joined with "\n"
    id: str | None  # the last event ID in effect at dispatch, None if never set


class SSEDecoder:
    """Bytes in, complete :class:`SSEEvent` objects out. One instance per stream."""

    __slots__ = (
        "_bom_checked",
        "_buf",
        "_data",
        "_data_bytes",
        "_event",
        "_last_id",
        "_max_event",
        "_max_line",
        "_skip_lf",
    )

    def __init__(self, max_line_bytes: int = 1 << 20, max_event_bytes: int = 4 << 20) -> None:
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._buf = bytearray()
        self._bom_checked = False
        # A chunk that ends with "\r" may be followed by "\n" in the next chunk;
        # we dispatch the line at the "\r" and swallow a leading "\n" next time.
        self._skip_lf = False
        self._data: list[str] = []
        self._data_bytes = 0
        self._event = ""
        self._last_id: str | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        buf = self._buf
        buf += data
        if not self._bom_checked:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                return []  # could still be a BOM split across chunks
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
            self._bom_checked = True
        events: list[SSEEvent] = []
        pos = 0
        end_of_buf = len(buf)
        search = _EOL.search
        while True:
            m = search(buf, pos)
            if m is None:
                break
            start, end = m.span()
            if start - pos > self._max_line:
                raise StreamLimitError(f"SSE line exceeds max_line_bytes ({self._max_line} bytes)")
            self._line(bytes(buf[pos:start]), events)
            if end == end_of_buf and end - start == 1 and buf[start] == 0x0D:  # lone CR at the end
                self._skip_lf = True
            pos = end
        if pos:
            del buf[:pos]
        if len(buf) > self._max_line:
            raise StreamLimitError(f"SSE line exceeds max_line_bytes ({self._max_line} bytes)")
        return events

    def finish(self) -> list[SSEEvent]:
        """End of stream: drop any unterminated line/event (WHATWG), reset state."""
        self._buf.clear()
        self._data.clear()
        self._data_bytes = 0
        self._event = ""
        self._skip_lf = False
        return []

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        if raw[0] == 0x3A:  # ":" comment (keep-alives)
            return
        line = raw.decode("utf-8", "replace")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_bytes += len(raw)
            if self._data_bytes > self._max_event:
                raise StreamLimitError(
                    f"SSE event exceeds max_event_bytes ({self._max_event} bytes)"
                )
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:  # spec: ids with NUL are ignored
            self._last_id = value
        # "retry" and unknown fields are ignored: we never reconnect upstream.

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(SSEEvent(self._event or "message", "\n".join(self._data), self._last_id))
        self._data = []
        self._data_bytes = 0
        self._event = ""


def encode_sse(data: bytes | str, event: str | None = None) -> bytes:
    """Frame one event. Newlines in ``data`` become separate ``data:`` lines."""
    raw = data.encode() if isinstance(data, str) else data
    head = b"event: " + event.encode() + b"\n" if event else b""
    if b"\n" not in raw and b"\r" not in raw:  # the common case: one JSON line
        return head + b"data: " + raw + b"\n\n"
    lines = _EOL.split(raw)
    return head + b"".join(b"data: " + ln + b"\n" for ln in lines) + b"\n"
