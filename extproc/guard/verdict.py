"""Parse the guard model's reply into a verdict (sans-IO).

Only an explicit ``"result": "allow"`` (any case) allows. Everything unexpected is an
``error`` verdict whose reason says what was wrong; reasons never quote the reply body
(it may echo the judged text) and the module never sees the guard key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from extproc.providers.regex import compile_re2

__all__ = ["Verdict", "VerdictKind", "parse_guard_reply"]

VerdictKind = Literal["allow", "deny", "error"]

MAX_REASON_CHARS = 500

# A fenced block: ``` or ```json (any case), then the block, then ```.
_FENCED = compile_re2(r"(?is)```[a-z]*\s*(.*?)```", "guard fenced block")


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str

    @staticmethod
    def error(reason: str) -> Verdict:
        return Verdict("error", reason)


def _loads_object(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _extract_object(content: str) -> dict[str, Any] | None:
    """The JSON object in ``content``: the whole content, a fenced block, or the single
    ``{...}`` span inside surrounding prose."""
    stripped = content.strip()
    obj = _loads_object(stripped)
    if obj is not None:
        return obj
    match = _FENCED.search(stripped)
    if match is not None:
        obj = _loads_object(match.group(1).strip())
        if obj is not None:
            return obj
    start = stripped.find("{")
    end = stripped.rfind("}")
    if 0 <= start < end:
        return _loads_object(stripped[start : end + 1])
    return None


def _clip(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS:
        return reason[: MAX_REASON_CHARS - 3] + "..."
    return reason


def parse_guard_reply(status: int, body: bytes) -> Verdict:
    """The verdict for an HTTP reply (``status``, raw ``body``) of the guard model."""
    if not 200 <= status < 300:
        return Verdict.error(f"guard returned HTTP {status}")
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Verdict.error("guard reply body is not JSON")
    if not isinstance(reply, dict):
        return Verdict.error("guard reply body is not a JSON object")
    choices = reply.get("choices")
    if not isinstance(choices, list):
        return Verdict.error("guard reply has no choices")
    if not choices:
        return Verdict.error("guard reply has empty choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        return Verdict.error("guard reply choice has no message")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        return Verdict.error("guard reply message has no content")
    verdict = _extract_object(content)
    if verdict is None:
        return Verdict.error("guard answer is not a JSON object")
    result = verdict.get("result")
    if result is None:
        return Verdict.error("guard answer has no result")
    if not isinstance(result, str):
        return Verdict.error("guard answer result is not a string")
    raw_reason = verdict.get("reason")
    reason = raw_reason if isinstance(raw_reason, str) else ""
    normalized = result.strip().lower()
    if normalized == "allow":
        return Verdict("allow", _clip(reason))
    if normalized == "deny":
        return Verdict("deny", _clip(reason) or "denied by guard")
    return Verdict.error("guard answer result is neither allow nor deny")
