"""The gateway's own rejects, in the client API's error shape."""

from __future__ import annotations

from extproc.client_apis.base import ClientApi
from extproc.client_apis.registry import DEFAULT, api_named
from extproc.core.events import Reject


def reject(
    status: int,
    message: str,
    code: str,
    client_api: ClientApi | str = DEFAULT,
    headers: tuple[tuple[str, str], ...] = (),
    type_: str | None = None,
) -> Reject:
    """An immediate response with a JSON error body; `code` is the machine-readable reason.
    `client_api`: the API (or its name) whose error shape the body takes."""
    api = client_api if isinstance(client_api, ClientApi) else api_named(client_api)
    return Reject(
        status=status,
        body=api.error_body(status, message, code, type_),
        headers=(("content-type", "application/json"), *headers),
        reason=code,
    )
