"""Anthropic Messages clients to Claude hosted on a cloud (Bedrock, Vertex AI).

Both clouds take the Messages body nearly as is: the model moves to the path,
``anthropic_version`` names the cloud's API version in the body, and answers
are Anthropic's own JSON. Bedrock's ``InvokeModelWithResponseStream`` wraps
each Anthropic event in an event-stream ``chunk`` frame (base64 JSON), which
`InvokeStream` turns back into Anthropic's SSE; Vertex's ``streamRawPredict``
already answers SSE, read by the native tap.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from extproc.streaming.errors import StreamLimitError
from extproc.streaming.eventstream import EventStreamDecoder, EventStreamError
from extproc.streaming.sse import encode_sse
from extproc.translators.anthropic.errors import error_event
from extproc.translators.anthropic.native import NativeStreamTap
from extproc.translators.common import SSE
from extproc.usage import Usage

# Bedrock's exception names (HTTP x-amzn-ErrorType, stream :exception-type) -> status.
EXCEPTION_STATUS = {
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
    "validationexception": 400,
    "accessdeniedexception": 403,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "modelnotreadyexception": 503,
    "serviceunavailableexception": 503,
    "internalserverexception": 500,
    "modelstreamerrorexception": 502,
    "modelerrorexception": 502,
}


def exception_status(name: str) -> int:
    """A Bedrock exception name (``ThrottlingException:http://…`` too) -> HTTP status."""
    return EXCEPTION_STATUS.get(name.split(":", 1)[0].strip().lower(), 500)


BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_VERSION = "vertex-2023-10-16"


def hosted_payload(
    body: Mapping[str, Any], version: str, keep_stream: bool, stream: bool
) -> dict[str, Any]:
    """The client's Messages body for a cloud: no ``model`` (it is in the path),
    the cloud's ``anthropic_version``; ``stream`` only where the cloud reads it."""
    out = {k: v for k, v in body.items() if k not in ("model", "stream", "anthropic_version")}
    out["anthropic_version"] = version
    if keep_stream and stream:
        out["stream"] = True
    return out


class InvokeStream:
    """Bedrock ``InvokeModelWithResponseStream`` frames -> Anthropic SSE events."""

    content_type = SSE

    def __init__(self, max_frame_bytes: int | None = None) -> None:
        self._decoder = EventStreamDecoder(max_frame_bytes or (1 << 20))
        self._tap = NativeStreamTap(max_frame_bytes)
        self._ended = False
        self._stopped = False

    @property
    def usage(self) -> Usage | None:
        return self._tap.usage

    @property
    def model(self) -> str | None:
        return self._tap.model

    def feed(self, chunk: bytes) -> bytes:
        if self._ended:
            return b""
        try:
            messages = self._decoder.feed(chunk)
        except StreamLimitError:
            raise
        except EventStreamError as e:
            self._ended = True
            return error_event(502, f"upstream event stream is invalid: {e}")
        out: list[bytes] = []
        for m in messages:
            if m.message_type != "event":
                name = m.header(":exception-type") or m.header(":error-code") or "error"
                obj = _loads(m.payload)
                text = str(obj.get("message") or m.header(":error-message") or name)
                out.append(error_event(exception_status(name), text))
                self._ended = True
                break
            if m.event_type != "chunk":
                continue
            event = self._event(m.payload)
            if event is not None:
                out.append(event)
        data = b"".join(out)
        if data:
            self._tap.feed(data)
        return data

    def _event(self, payload: bytes) -> bytes | None:
        raw = _loads(payload).get("bytes")
        if not isinstance(raw, str):
            return None
        try:
            inner = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None
        obj = _loads(inner)
        kind = obj.get("type")
        if not isinstance(kind, str):
            return None
        if kind == "message_stop":
            self._stopped = True
            # Bedrock's own counters ride on the last event; clients need not see them.
            obj.pop("amazon-bedrock-invocationMetrics", None)
            inner = orjson.dumps(obj)
        return encode_sse(inner, kind)

    def finish(self) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        try:
            self._decoder.finish()
        except EventStreamError:
            return error_event(502, "upstream event stream was cut inside a frame")
        if not self._stopped:
            return error_event(502, "upstream stream ended without message_stop")
        return b""


def _loads(payload: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
