from __future__ import annotations

from typing import Any

import pytest

from extproc.guard.policy import decide, judged_text
from extproc.guard.prompt import DEFAULT_SYSTEM_PROMPT, build_guard_request
from extproc.guard.verdict import Verdict


@pytest.mark.parametrize(
    ("kind", "on_error", "allowed"),
    [
        ("allow", "deny", True),
        ("allow", "allow", True),
        ("deny", "deny", False),
        ("deny", "allow", False),
        ("error", "deny", False),
        ("error", "allow", True),
    ],
)
def test_decide(kind: Any, on_error: Any, allowed: bool) -> None:
    assert decide(Verdict(kind, "r"), on_error) is allowed


def test_decide_rejects_bad_on_error() -> None:
    with pytest.raises(ValueError, match="on_error"):
        decide(Verdict("allow", ""), "maybe")  # type: ignore[arg-type]


MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "system text"},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "an answer"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look at"},
            {"type": "image_url", "image_url": {"url": "data:..."}},
            {"type": "text", "text": "this picture"},
        ],
    },
    {"role": "tool", "content": "tool output"},
]


@pytest.mark.parametrize(
    ("messages", "mode", "expected"),
    [
        (MESSAGES, "all_user", "first question\nlook at\nthis picture"),
        (MESSAGES, "last_user", "look at\nthis picture"),
        (MESSAGES[:3], "last_user", "first question"),
        ([], "all_user", ""),
        ([], "last_user", ""),
        ([{"role": "system", "content": "s"}], "all_user", ""),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": ""}],
            "last_user",
            "a",
        ),
        ([{"role": "user", "content": None}, {"role": "user"}], "all_user", ""),
        (
            [{"role": "user", "content": [{"text": "untyped part"}, "junk"]}],
            "all_user",
            "untyped part",
        ),
        (["not a dict", {"role": "user", "content": "ok"}], "all_user", "ok"),
    ],
)
def test_judged_text(messages: list[dict[str, Any]], mode: Any, expected: str) -> None:
    assert judged_text(messages, mode) == expected


def test_judged_text_rejects_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        judged_text(MESSAGES, "first_user")  # type: ignore[arg-type]


def test_build_guard_request() -> None:
    body = build_guard_request("hello", "qwen-turbo", None)
    assert body == {
        "model": "qwen-turbo",
        "messages": [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": "hello"},
        ],
        "stream": False,
        "temperature": 0,
    }
    assert build_guard_request("t", "m", "custom")["messages"][0]["content"] == "custom"


def test_default_prompt_describes_the_contract() -> None:
    assert '"result": "allow"' in DEFAULT_SYSTEM_PROMPT
    assert '"result": "deny"' in DEFAULT_SYSTEM_PROMPT
    assert "confidential" in DEFAULT_SYSTEM_PROMPT
    assert "personal" in DEFAULT_SYSTEM_PROMPT
