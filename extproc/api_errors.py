"""Error bodies in each client API's own shape, and the one status -> error type table.

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
