"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``.

The SDKs pick the exception class by HTTP status; ``error.type`` is what a
client logs and branches on, so it follows Anthropic's table per status.
"""

from __future__ import annotations

import orjson

from extproc.api_errors import anthropic_error_body as error_body
from extproc.api_errors import anthropic_error_type_for_status as error_type_for_status
from extproc.streaming.sse import encode_sse
from extproc.translators.common import extract_error, loads_object

__all__ = ["error_body", "error_event", "error_type_for_status", "is_anthropic_error", "map_error"]


def is_anthropic_error(body: bytes) -> bool:
    obj = loads_object(body)
    err = obj.get("error") if obj else None
    return (
        obj is not None
        and obj.get("type") == "error"
        and isinstance(err, dict)
        and isinstance(err.get("type"), str)
        and isinstance(err.get("message"), str)
    )


def map_error(status: int, body: bytes) -> bytes:
    """Any provider's error body -> Anthropic's shape, keeping the provider's words."""
    if is_anthropic_error(body):
        return body
    message, code = extract_error(body)
    return error_body(status, message, str(code) if code is not None else None)


def error_event(status: int, message: str) -> bytes:
    """An in-stream ``event: error`` (the SDKs raise on it)."""
    err = {"type": error_type_for_status(status), "message": message}
    return encode_sse(orjson.dumps({"type": "error", "error": err}), "error")
