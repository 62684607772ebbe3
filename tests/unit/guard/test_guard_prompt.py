"""The guard's request body and default prompt."""

from __future__ import annotations

from extproc.guard.prompt import DEFAULT_SYSTEM_PROMPT, build_guard_request


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
