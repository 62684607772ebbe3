"""The client's request body: content type, JSON, and the shape each endpoint needs.

Anything wrong is a `Reject` in the client API's error shape, never an exception.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.client_apis.base import ClientApi
from extproc.client_apis.registry import ENDPOINTS
from extproc.core.errors import reject
from extproc.core.events import Headers, Reject
from extproc.core.request import OLLAMA_GENERATE, RESPONSES

# The deepest JSON the gateway writes again (orjson reads 1,024 levels and
# writes 254): a deeper body would fail where a leg or check re-serialises it.
MAX_JSON_DEPTH = 254

# Endpoints whose body must carry `messages` (each client API's spec says).
_MESSAGES_ENDPOINTS = frozenset(name for name, e in ENDPOINTS.items() if e.messages)

# curl's default form type is accepted: the seed's `curl -d` sends a JSON body with it.
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")


def parse_body(
    headers: Headers, raw: bytes, endpoint: str, api: ClientApi | str
) -> dict[str, Any] | Reject:
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in _JSON_TYPES and not ctype.endswith("+json"):
        return reject(
            415,
            f"Content-Type {ctype!r} is not supported; send application/json.",
            "unsupported_media_type",
            api,
        )
    if not raw.strip():
        return reject(400, "The request body is empty.", "empty_body", api)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return reject(400, f"The request body is not valid JSON: {e.args[0]}", "invalid_json", api)
    if not isinstance(body, dict):
        return reject(400, "The request body must be a JSON object.", "invalid_body", api)
    # Fewer brackets than the limit cannot nest deeper: the walk is for the rest.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than(body, MAX_JSON_DEPTH):
        msg = f"The request body is nested deeper than {MAX_JSON_DEPTH} levels."
        return reject(400, msg, "body_too_deep", api)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        # As the OpenAI API answers; null counts as absent (the route's default).
        return reject(
            400,
            f"Invalid type for 'model': expected a string, but got {_json_type(model)} instead.",
            "invalid_type",
            api,
        )
    if endpoint in _MESSAGES_ENDPOINTS:
        msgs = body.get("messages")
        if msgs is None:
            return reject(400, "'messages' is required.", "missing_messages", api)
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            return reject(
                400, "'messages' must be an array of message objects.", "invalid_messages", api
            )
    elif endpoint == RESPONSES and body.get("input") is None:
        return reject(400, "'input' is required.", "missing_input", api)
    elif endpoint == OLLAMA_GENERATE and not isinstance(body.get("prompt", ""), str):
        return reject(400, "'prompt' must be a string.", "invalid_prompt", api)
    return body


def _json_type(v: object) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a decimal"
    return "an array" if isinstance(v, list) else "an object"


def _deeper_than(body: Any, limit: int) -> bool:
    # Iterative: a recursive walk would itself hit Python's recursion limit.
    todo: list[tuple[Any, int]] = [(body, 1)]
    while todo:
        v, depth = todo.pop()
        if depth > limit:
            return True
        kids = v.values() if isinstance(v, dict) else v
        todo.extend((k, depth + 1) for k in kids if isinstance(k, dict | list))
    return False
