"""The gateway's own rejects, in the client API's error shape."""

from __future__ import annotations

from extproc.api_errors import (
    anthropic_error_body,
    error_type_for_status,
    ollama_error_body,
    openai_error_body,
)
from extproc.core.events import Reject


def reject(
    status: int,
    message: str,
    code: str,
    client_api: str = "openai",
    headers: tuple[tuple[str, str], ...] = (),
    type_: str | None = None,
) -> Reject:
    """An immediate response with a JSON error body; `code` is the machine-readable reason."""
    if client_api == "ollama":
        body = ollama_error_body(message)
    elif client_api == "anthropic":
        body = anthropic_error_body(status, message, code)
    else:
        body = openai_error_body(message, type_ or error_type_for_status(status), code)
    return Reject(
        status=status,
        body=body,
        headers=(("content-type", "application/json"), *headers),
        reason=code,
    )
