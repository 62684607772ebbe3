"""The cache key: a hash of everything that determines the answer.

Route, provider, the model after mapping, the endpoint, the consumer (unless
the route shares entries), the values of the route's `key_includes` headers,
and the request body as canonical JSON (keys sorted) without the fields that
do not change the answer. `temperature`, `seed` and every other sampling
field stay in: a request asking for a different sampling is another request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from extproc.cache.policy import CachePolicy

VERSION = "1"
# Top-level fields that change how an answer is delivered or attributed, not what it says.
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "key"})
_TOOL_ROLES = frozenset({"tool", "function"})


def normalised_body(body: Mapping[str, Any]) -> bytes:
    """The body as canonical JSON, without the fields that do not change the answer."""
    kept = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)


def cache_key(
    policy: CachePolicy,
    *,
    route: str,
    provider: str,
    model: str,
    endpoint: str,
    consumer: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
) -> str:
    """Hex SHA-256 of the request's identity (never holds a prompt or a key in clear)."""
    parts = [
        VERSION,
        route,
        provider,
        model,
        endpoint,
        "*" if policy.shared else f"c:{consumer}",
        *(headers.get(h, "") for h in policy.key_includes),
    ]
    h = hashlib.sha256(orjson.dumps(parts))
    h.update(b"\n")
    h.update(normalised_body(body))
    return h.hexdigest()


def has_tool_result(body: Mapping[str, Any]) -> bool:
    """The request hands a tool's result back to the model (OpenAI, Ollama and
    Anthropic messages; Responses API input items): its answer depends on the
    outside world, so it is not cached unless the route says so."""
    msgs = body.get("messages")
    if isinstance(msgs, list):
        for m in msgs:
            if not isinstance(m, dict):
                continue
            if m.get("role") in _TOOL_ROLES:
                return True
            content = m.get("content")
            if isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content
            ):
                return True
    items = body.get("input")
    if isinstance(items, list):
        return any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in items)
    return False
