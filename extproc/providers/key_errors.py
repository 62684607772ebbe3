"""Is a provider's error about the key? Only then is the key cooled down.

A 401 always is. A 403 is only when its body carries the provider's
authentication or permission error type (Anthropic `permission_error` /
`authentication_error`, OpenAI `invalid_api_key`, Gemini
`PERMISSION_DENIED` / `UNAUTHENTICATED`, dashscope `InvalidApiKey` /
`AccessDenied...`): providers also answer 403 to content-policy refusals,
which any client can trigger at will, and cooling the key for those would
let one client take a provider out for every consumer.
"""

from __future__ import annotations

from typing import Any

import orjson

_KEY_TYPES = frozenset(
    {
        "authentication_error",
        "permission_error",
        "invalid_api_key",
        "invalid_key",
        "permission_denied",
        "unauthenticated",
        "unauthorized",
        "invalidapikey",
        "accessdenied",
        "access_denied",
        "api_key_invalid",
        "insufficient_permissions",
    }
)


def _codes(body: bytes) -> list[str]:
    """The error's type, code and status strings (OpenAI, Anthropic, Gemini, dashscope shapes)."""
    try:
        value: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return []
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, dict):
        return []
    err = value.get("error")
    found = [value.get("code"), value.get("type")]
    if isinstance(err, dict):
        found += [err.get("type"), err.get("code"), err.get("status")]
    return [c.strip().lower() for c in found if isinstance(c, str)]


def about_the_key(status: int, body: bytes) -> bool:
    if status == 401:
        return True
    if status != 403:
        return False
    return any(c in _KEY_TYPES or c.split(".", 1)[0] in _KEY_TYPES for c in _codes(body))
