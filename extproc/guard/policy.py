"""What to do with a verdict, and which part of a chat request the guard judges."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from extproc.guard.verdict import Verdict

__all__ = ["decide", "judged_text"]

OnError = Literal["deny", "allow"]
TextMode = Literal["all_user", "last_user"]


def decide(verdict: Verdict, on_error: OnError = "deny") -> bool:
    """Whether the request may proceed: allow -> True, deny -> False, error -> ``on_error``."""
    if on_error not in ("deny", "allow"):
        raise ValueError(f"on_error must be 'deny' or 'allow', not {on_error!r}")
    if verdict.kind == "allow":
        return True
    if verdict.kind == "deny":
        return False
    return on_error == "allow"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def _user_texts(messages: Iterable[Any]) -> list[str]:
    texts: list[str] = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            text = _content_text(message.get("content"))
            if text:
                texts.append(text)
    return texts


def judged_text(messages: list[dict[str, Any]], mode: TextMode = "all_user") -> str:
    """The text the guard judges from OpenAI-style ``messages``.

    ``all_user``: every user message joined by ``"\\n"``; ``last_user``: the last user
    message with text. String content and the text parts of multimodal content arrays
    count (parts of one message are joined by ``"\\n"``); other parts are ignored.
    """
    if mode == "all_user":
        return "\n".join(_user_texts(messages))
    if mode == "last_user":
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                text = _content_text(message.get("content"))
                if text:
                    return text
        return ""
    raise ValueError(f"mode must be 'all_user' or 'last_user', not {mode!r}")
