"""Error bodies in each client API's own shape, and the status -> error type tables.

Used by the gateway's own rejects (core/errors.py) and by the translators that
map a provider's error to the client's API, so both agree on every status.
"""

from __future__ import annotations

from typing import Any

import orjson


def error_type_for_status(status: int) -> str:
    """The OpenAI error ``type`` a client SDK expects for a status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "server_error"


def openai_error_body(message: str, type_: str, code: str | int | None = None) -> bytes:
    err: dict[str, Any] = {"message": message, "type": type_, "param": None, "code": code}
    return orjson.dumps({"error": err})


def ollama_error_body(message: str) -> bytes:
    """Ollama's own error shape (and the seed key proxy's): ``{"error": "..."}``."""
    return orjson.dumps({"error": message})


# Anthropic's error type per status (https://docs.anthropic.com/en/api/errors).
_ANTHROPIC_TYPES = {
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


def anthropic_error_type_for_status(status: int) -> str:
    # Anthropic: "we may also use invalid_request_error for other 4XX codes".
    return _ANTHROPIC_TYPES.get(status) or (
        "invalid_request_error" if status < 500 else "api_error"
    )


def anthropic_error_body(status: int, message: str, code: str | None = None) -> bytes:
    """``{"type": "error", "error": {"type", "message"}}``; ``code`` (the gateway's
    reason, or the provider's error code) rides along when given."""
    err: dict[str, Any] = {"type": anthropic_error_type_for_status(status), "message": message}
    if code:
        err["code"] = code
    return orjson.dumps({"type": "error", "error": err})
