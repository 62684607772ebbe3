"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``.

The SDKs pick the exception class by HTTP status; ``error.type`` is what a
client logs and branches on, so it follows Anthropic's table per status.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.streaming.sse import encode_sse
from extproc.translators.common import extract_error, loads_object

# https://docs.anthropic.com/en/api/errors
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    # Anthropic: "we may also use invalid_request_error for other 4XX codes".
    return _TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """An Anthropic error body; ``code`` (the gateway's reason) rides along when given."""
    err: dict[str, Any] = {"type": error_type_for_status(status), "message": message}
    if code:
        err["code"] = code
    return orjson.dumps({"type": "error", "error": err})


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
