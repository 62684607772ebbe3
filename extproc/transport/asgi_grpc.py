"""gRPC over HTTP/2 on ASGI: the wire format, nothing about ext_proc.

A gRPC message is a 5-byte prefix (compressed flag, big-endian length) and
the serialized protobuf, in both directions; the call's outcome is the
`grpc-status` (and `grpc-message`) HTTP/2 trailer. ASGI carries trailers as
`http.response.trailers` when `http.response.start` announces them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# gRPC status codes (grpc/status.h).
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
NOT_FOUND = 5
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14

# Built once: the same messages start and end every call. h2corn does not
# modify the dicts it is sent.
_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/grpc"), (b"grpc-accept-encoding", b"identity")],
    "trailers": True,
}
_END_BODY: Message = {"type": "http.response.body", "body": b"", "more_body": False}
_OK_TRAILERS: Message = {
    "type": "http.response.trailers",
    "headers": [(b"grpc-status", b"0")],
    "more_trailers": False,
}
# grpc-message is percent-encoded: printable ASCII except "%" stays as is.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class GrpcError(Exception):
    """Ends the call with this status (the message names no secret)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Disconnected(Exception):
    """The client went away (http.disconnect): nothing more can be sent."""


class GrpcStream:
    """One gRPC call on one ASGI HTTP request: read messages, write
    messages, finish with a status."""

    __slots__ = ("_buf", "_eof", "_max", "_receive", "_send", "_started")

    def __init__(self, receive: Receive, send: Send, max_message_bytes: int) -> None:
        self._receive, self._send = receive, send
        self._max = max_message_bytes
        self._buf: bytes | bytearray = b""
        self._eof = False
        self._started = False

    async def read(self) -> bytes | None:
        """The next message, or None once the client has half-closed.
        Raises GrpcError for a message we cannot take, Disconnected when the
        client went away."""
        while True:
            buf = self._buf
            if len(buf) >= 5:
                n = self._check_prefix(buf)
                end = 5 + n
                if len(buf) >= end:
                    msg = bytes(buf[5:end])
                    if isinstance(buf, bytearray):
                        del buf[:end]
                    else:
                        self._buf = buf[end:]
                    return msg
            if self._eof:
                if buf:
                    raise GrpcError(INTERNAL, "the request ended inside a message")
                return None
            m = await self._receive()
            if m["type"] != "http.request":
                raise Disconnected
            body = m.get("body", b"")
            # Usually one chunk is one whole message: kept as is. A message
            # in many chunks is joined in a bytearray (no quadratic copies).
            if not buf:
                self._buf = body
            elif isinstance(buf, bytearray):
                buf += body
            else:
                self._buf = bytearray(buf) + body
            self._eof = not m.get("more_body", False)

    def _check_prefix(self, buf: bytes | bytearray) -> int:
        if buf[0] == 1:
            raise GrpcError(UNIMPLEMENTED, "compressed messages are not supported")
        if buf[0]:
            raise GrpcError(INTERNAL, f"invalid message flags {buf[0]:#x}")
        n = int.from_bytes(buf[1:5], "big")
        if n > self._max:
            raise GrpcError(
                RESOURCE_EXHAUSTED, f"received message larger than max ({n} vs. {self._max})"
            )
        return n

    async def write(self, payload: bytes) -> None:
        if not self._started:
            self._started = True
            await self._send(_START)
        await self._send(
            {
                "type": "http.response.body",
                "body": b"\0" + len(payload).to_bytes(4, "big") + payload,
                "more_body": True,
            }
        )

    async def finish(self, code: int = OK, message: str = "") -> None:
        """End the call with `code` (grpc-status) and `message` (grpc-message)."""
        if code == OK:
            trailers = _OK_TRAILERS
        else:
            trailers = {
                "type": "http.response.trailers",
                "headers": [
                    (b"grpc-status", str(code).encode()),
                    (b"grpc-message", quote(message, safe=_SAFE).encode()),
                ],
                "more_trailers": False,
            }
        # The client may be gone already; then there is nobody to tell. ASGI
        # servers raise OSError for a send after the disconnect.
        with contextlib.suppress(OSError):
            if not self._started:
                self._started = True
                await self._send(_START)
            await self._send(_END_BODY)
            await self._send(trailers)
