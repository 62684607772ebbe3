"""Incremental newline-delimited JSON decoder (Ollama's streaming format)."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.streaming.errors import StreamDecodeError, StreamLimitError


class NDJSONDecoder:
    """Bytes in, parsed JSON values out; lines may be split across chunks anywhere.

    Only complete lines are parsed (as bytes, so a split UTF-8 character is
    never decoded half-way). Blank lines are skipped. A trailing line without a
    newline is parsed by :meth:`finish`, since Ollama's last object may lack one.
    """

    __slots__ = ("_buf", "_max_line")

    def __init__(self, max_line_bytes: int = 4 << 20) -> None:
        self._max_line = max_line_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        out: list[Any] = []
        pos = 0
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            if nl - pos > self._max_line:
                raise StreamLimitError(
                    f"NDJSON line exceeds max_line_bytes ({self._max_line} bytes)"
                )
            try:
                self._parse(buf[pos:nl], out)
            except StreamDecodeError:
                del buf[: nl + 1]  # drop the bad line so a caller may carry on
                raise
            pos = nl + 1
        if pos:
            del buf[:pos]
        if len(buf) > self._max_line:
            raise StreamLimitError(f"NDJSON line exceeds max_line_bytes ({self._max_line} bytes)")
        return out

    def finish(self) -> list[Any]:
        out: list[Any] = []
        if self._buf:
            self._parse(self._buf, out)
            self._buf = bytearray()
        return out

    @staticmethod
    def _parse(line: bytes | bytearray, out: list[Any]) -> None:
        if not line.strip():
            return
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            preview = bytes(line[:80]).decode("utf-8", "replace")
            raise StreamDecodeError(f"invalid JSON line in NDJSON stream: {preview!r}") from exc
