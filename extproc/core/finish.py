"""Finish reasons and the response id of a whole answer, for traces only.

Read from the answer as the client gets it (its API's shape), only with
tracing on: one more parse of a buffered body. Streams are not read here.
"""

from __future__ import annotations

from typing import Any

import orjson

_MAX_REASONS = 8


def answer_facts(api: str, body: bytes) -> tuple[tuple[str, ...], str]:
    """(finish reasons, response id) of a JSON answer; ((), "") when unknown."""
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return (), ""
    if not isinstance(obj, dict):
        return (), ""
    reasons: list[str] = []
    if api == "anthropic":
        r = obj.get("stop_reason")
        if isinstance(r, str):
            reasons.append(r)
    elif api == "ollama":
        r = obj.get("done_reason")
        if isinstance(r, str):
            reasons.append(r)
    else:
        choices = obj.get("choices")
        for c in choices[:_MAX_REASONS] if isinstance(choices, list) else ():
            r = c.get("finish_reason") if isinstance(c, dict) else None
            if isinstance(r, str):
                reasons.append(r)
    rid = obj.get("id")
    return tuple(x[:64] for x in reasons), rid[:128] if isinstance(rid, str) else ""
