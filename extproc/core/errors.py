"""Error bodies in each client API's own shape."""

from __future__ import annotations

import orjson

from extproc.core.events import Reject

# OpenAI error "type" per status class, as OpenAI's API answers.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_body(status: int, message: str, code: str, type_: str | None = None) -> bytes:
    etype = type_ or _OPENAI_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    return orjson.dumps({"error": {"message": message, "type": etype, "code": code}})


def ollama_error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def reject(
    status: int,
    message: str,
    code: str,
    client_api: str = "openai",
    headers: tuple[tuple[str, str], ...] = (),
    type_: str | None = None,
) -> Reject:
    """An immediate response with a JSON error body; `code` is the machine-readable reason."""
    body = (
        ollama_error_body(message)
        if client_api == "ollama"
        else openai_error_body(status, message, code, type_)
    )
    return Reject(
        status=status,
        body=body,
        headers=(("content-type", "application/json"), *headers),
        reason=code,
    )
